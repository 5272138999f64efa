"""`python -m adapter.orthanc`: the path of the Orthanc plugin script, for Orthanc's "PythonScript"."""

from . import plugin_script

print(plugin_script())
