"""Orthanc Python plugin: every new SR that Orthanc stores goes to oligo-adapter's STOW-RS endpoint.

Runs inside Orthanc (Debian package orthanc-python), on Orthanc's own Python and its standard library
only; it never imports oligo-adapter. Settings: the "OligoAdapter" section of Orthanc's configuration,

    "Plugins": ["/usr/share/orthanc/plugins/libOrthancPython.so"],
    "PythonScript": "<the path `python -m adapter.orthanc` prints>",
    "OligoAdapter": {"Url": "http://127.0.0.1:8080", "Token": "${OLIGO_TOKEN}"}

Why a plugin and STOW-RS rather than Orthanc auto-routing to the DICOM listener: the decision stays out
of Orthanc's storage path (the callback only queues; a worker thread sends), the bearer token
authenticates Orthanc, an unusable SR gets the adapter's reason in Orthanc's log, and a down adapter is
retried with backoff instead of the instance being dropped by a one-shot C-STORE.

Only the SR storage classes the adapter reads are sent (Enhanced, Comprehensive, Comprehensive 3D,
Extensible SR); everything else Orthanc stores is left alone. 2xx: sent. 401, 408, 425, 429, 5xx and
network errors: tried again after Backoff, 2 Backoff, 4 Backoff, ... up to BackoffMax, at most
MaxAttempts times. Other 4xx (e.g. 422, an SR the adapter cannot use): not sent again, the answer is
logged. Resending is harmless (the adapter ignores an SR it already has), so `POST /oligo/forward` on
Orthanc's REST API with a JSON list of instance, series, study or patient ids queues them again.
"""

import json
import queue
import threading
import time
import urllib.error
import urllib.request
import uuid

try:  # inside Orthanc
    import orthanc
except ImportError:  # imported elsewhere (tests of the pure parts below): no plugin is registered
    orthanc = None

SR_STORAGE_CLASSES = frozenset({
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
    "1.2.840.10008.5.1.4.1.1.88.35",  # Extensible SR
})
DEFAULTS = {"Url": "http://127.0.0.1:8080", "Token": "", "Timeout": 30.0, "MaxAttempts": 20,
            "Backoff": 2.0, "BackoffMax": 300.0, "QueueSize": 100000}
RETRYABLE_CLIENT_ERRORS = frozenset({401, 408, 425, 429})
SENT, RETRY, REFUSED = "sent", "retry", "refused"


def settings_from(configuration: str) -> dict:
    """The "OligoAdapter" section of Orthanc's configuration (JSON text) over the defaults."""
    section = json.loads(configuration or "{}").get("OligoAdapter") or {}
    unknown = sorted(set(section) - set(DEFAULTS))
    if unknown:
        raise ValueError("OligoAdapter: unknown setting(s) " + ", ".join(unknown))
    settings = dict(DEFAULTS, **section)
    for name in ("Timeout", "Backoff", "BackoffMax"):
        settings[name] = float(settings[name])
    settings["MaxAttempts"], settings["QueueSize"] = int(settings["MaxAttempts"]), int(settings["QueueSize"])
    settings["Url"] = str(settings["Url"]).rstrip("/")
    return settings


def stow_request(data, boundary=None):
    """A STOW-RS body (PS3.18 §10.5): multipart/related with one application/dicom part."""
    boundary = boundary or "oligo-" + uuid.uuid4().hex
    body = (b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + data
            + b"\r\n--" + boundary.encode() + b"--\r\n")
    return body, 'multipart/related; type="application/dicom"; boundary=' + boundary


def outcome_of(status):
    """What an HTTP status (None: no answer) means for this instance."""
    if status is not None and 200 <= status < 300:
        return SENT
    if status is None or status >= 500 or status in RETRYABLE_CLIENT_ERRORS:
        return RETRY
    return REFUSED


def backoff(attempts, base, ceiling):
    """Wait after `attempts` failed tries: base, 2 base, 4 base, ... up to ceiling."""
    return min(ceiling, base * (2 ** max(0, attempts - 1)))


def post(url, token, data, timeout):
    """POST one instance; (HTTP status or None, the answer's text or the network error)."""
    body, content_type = stow_request(data)
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = "Bearer " + token
    request = urllib.request.Request(url + "/studies", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as exc:
        return None, str(getattr(exc, "reason", exc))


class Forwarder:
    """A queue of Orthanc instance ids and one worker thread that sends them, in order, with retries."""

    def __init__(self, settings, api):
        self.settings, self.api = settings, api  # api: Orthanc's REST API (RestApiGet) and its log
        self.pending = queue.Queue(maxsize=settings["QueueSize"])
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="oligo-forward", daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.stopping.set()
        try:
            self.pending.put_nowait(None)
        except queue.Full:
            pass
        self.thread.join(timeout=self.settings["Timeout"] + 5)

    def submit(self, instance_id):
        try:
            self.pending.put_nowait(instance_id)
        except queue.Full:
            self.api.LogError("oligo: queue full, instance %s not sent (POST /oligo/forward it later)" % instance_id)

    def _run(self):
        while not self.stopping.is_set():
            instance_id = self.pending.get()
            if instance_id is None:
                break
            try:
                self.forward(instance_id)
            except Exception as exc:  # one bad instance must not end forwarding for good
                self.api.LogError("oligo: instance %s not sent: %s: %s" % (instance_id, exc.__class__.__name__, exc))

    def forward(self, instance_id):
        """Send the instance if it is an SR the adapter reads; wait and retry while the adapter is away."""
        try:
            sop_class = self.api.RestApiGet("/instances/%s/metadata/SopClassUid" % instance_id)
        except Exception:  # deleted meanwhile
            return
        if isinstance(sop_class, bytes):
            sop_class = sop_class.decode("ascii", "replace")
        if sop_class.strip("\0 ") not in SR_STORAGE_CLASSES:
            return
        data = self.api.RestApiGet("/instances/%s/file" % instance_id)
        settings = self.settings
        for attempt in range(1, settings["MaxAttempts"] + 1):
            status, answer = post(settings["Url"], settings["Token"], data, settings["Timeout"])
            outcome = outcome_of(status)
            if outcome == SENT:
                self.api.LogInfo("oligo: instance %s sent (%s)" % (instance_id, status))
                return
            if outcome == REFUSED:
                self.api.LogWarning("oligo: instance %s refused by the adapter (%s): %s"
                                    % (instance_id, status, answer[:500]))
                return
            if attempt < settings["MaxAttempts"]:
                self.api.LogWarning("oligo: instance %s not sent (%s: %s); trying again"
                                    % (instance_id, status, answer[:200]))
                if self.stopping.wait(backoff(attempt, settings["Backoff"], settings["BackoffMax"])):
                    return
        self.api.LogError("oligo: instance %s not sent after %d attempts (POST /oligo/forward it later)"
                          % (instance_id, settings["MaxAttempts"]))


def instances_of(api, resource_id):
    """The instance ids under an Orthanc id of any level (an unknown id gives none)."""
    for level in ("instances", "series", "studies", "patients"):
        try:
            answer = json.loads(api.RestApiGet("/%s/%s" % (level, resource_id)))
        except Exception:
            continue
        if level == "instances":
            return [resource_id]
        return [i["ID"] for i in json.loads(api.RestApiGet("/%s/%s/instances" % (level, resource_id)))] \
            if answer else []
    return []


def register():
    """Hook the forwarder into Orthanc: new instances are queued, /oligo/forward queues on request."""
    forwarder = Forwarder(settings_from(orthanc.GetConfiguration()), orthanc)

    def on_change(change_type, _level, resource_id):
        if change_type == orthanc.ChangeType.NEW_INSTANCE:
            forwarder.submit(resource_id)
        elif change_type == orthanc.ChangeType.ORTHANC_STARTED:
            forwarder.start()
            orthanc.LogWarning("oligo: forwarding SRs to %s/studies" % forwarder.settings["Url"])
        elif change_type == orthanc.ChangeType.ORTHANC_STOPPED:
            forwarder.stop()

    def on_forward(output, _uri, **request):
        if request["method"] != "POST":
            output.SendMethodNotAllowed("POST")
            return
        try:
            ids = json.loads(request["body"])
            if isinstance(ids, str):
                ids = [ids]
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise ValueError
        except ValueError:
            output.SendHttpStatusCode(400)  # the body must be a JSON list of Orthanc ids
            return
        queued = [instance for resource in ids for instance in instances_of(orthanc, resource)]
        for instance in queued:
            forwarder.submit(instance)
        output.AnswerBuffer(json.dumps({"queued": len(queued)}), "application/json")

    orthanc.RegisterOnChangeCallback(on_change)
    orthanc.RegisterRestCallback("/oligo/forward", on_forward)


if orthanc is not None:
    register()
