"""The HTTP service (FastAPI) for integration engines, and the outbox delivery to the EHR.

    app = create_app(Settings.load())     # adapter.service.http
"""
