"""Provider stand-ins: one ASGI app speaking SendGrid v3, Aliyun SMS, Twilio, WeCom and FCM v1.

Each imitates its provider's request shape (checked: a malformed request is refused the way the
provider refuses it), authentication, answers and error codes, plus what tests need to steer:

- ``fail_next``: canned answers for the next requests, in order;
- ``fail_half``: every other request answers 500 — half of them *after* accepting the message,
  as a real provider that fails while answering does, so only the idempotency key prevents a
  duplicate;
- ``rate``: a server-side token bucket answering 429 (or the provider's throttling code) past it.

- ``stall``: seconds a request the provider accepted waits before its answer (a slow provider:
  the window between taking a message and saying so); setting it to 0 answers them at once.

``delivered`` counts, per send key, how many times a message reached "the person": a request the
provider accepted whose idempotency key it had not seen. ``accepted`` counts every request
accepted, per key, whether seen before or not: what a provider that does not deduplicate (Aliyun,
Twilio, FCM, SendGrid, WeCom) delivers.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from provider_stub import read_body

from connectors.sms import aliyun_signature

API_KEY = "sg-test-key"
ALIYUN_KEY_ID, ALIYUN_SECRET = "LTAI-test", "aliyun-test-secret"
TWILIO_SID, TWILIO_TOKEN = "AC123", "twilio-test-token"
CORP_ID, CORP_SECRET = "ww-corp", "wecom-test-secret"
FCM_PROJECT, FCM_TOKEN = "demo-project", "fcm-test-token"
WECOM_STRANGER = "wm-not-a-contact"
FCM_GONE = "device-uninstalled"


@dataclass
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    accept: bool = False
    """Accept the message before answering (a failure after the fact)."""


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


class Bucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.at = float(burst), time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Providers:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.requests: list[Request] = []
        self.fail_next: list[Answer] = []
        self.fail_half = False
        self.bucket: Bucket | None = None
        self.seen_keys: dict[str, str] = {}
        self.delivered: Counter[str] = Counter()
        self.accepted: Counter[str] = Counter()
        self.stall = 0.0
        self.throttled = 0
        self.wecom_tokens: dict[str, bool] = {}  # token -> still valid
        self.token_fetches = 0
        self._ids = itertools.count(1)
        self._half = itertools.count()

    def rate(self, rate: float, burst: int = 1) -> None:
        self.bucket = Bucket(rate, burst)

    def expire_wecom_tokens(self) -> None:
        for token in self.wecom_tokens:
            self.wecom_tokens[token] = False

    # -- ASGI --------------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = await read_body(receive)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
        request = Request(scope["method"], scope["path"], query, headers, body)
        with self._lock:
            self.requests.append(request)
            taken = sum(self.accepted.values())
            answer = self._answer(request)
            taken = sum(self.accepted.values()) > taken
        if taken:
            await self._hold()
        raw = b"" if answer.body is None else json.dumps(answer.body).encode()
        out = [(b"content-type", b"application/json")] if raw else []
        out += [(k.lower().encode(), v.encode()) for k, v in answer.headers.items()]
        await send({"type": "http.response.start", "status": answer.status, "headers": out})
        await send({"type": "http.response.body", "body": raw})

    async def _hold(self) -> None:
        """Keep an accepted request's answer for ``stall`` seconds, or until it is set to 0."""
        deadline = time.monotonic() + self.stall
        for _ in itertools.count():  # polled: the test thread changes ``stall``
            if not self.stall or time.monotonic() >= deadline:
                return
            await asyncio.sleep(0.05)

    def _answer(self, request: Request) -> Answer:
        path = request.path
        if path == "/cgi-bin/gettoken":
            return self._wecom_token(request)
        if path.startswith("/v3/mail/send"):
            handler = self._sendgrid
        elif path == "/" and request.method == "POST":
            handler = self._aliyun
        elif path.startswith("/2010-04-01/"):
            handler = self._twilio
        elif path == "/cgi-bin/externalcontact/add_msg_template":
            handler = self._wecom_send
        elif path.startswith("/v1/projects/"):
            handler = self._fcm
        else:
            return Answer(404, {"error": "no such endpoint"})
        return handler(request)

    def _steer(self, request: Request, key: str, throttled: Answer) -> Answer | None:
        """A canned, throttled or half-failing answer, else None (go on normally)."""
        if self.fail_next:
            answer = self.fail_next.pop(0)
            if answer.accept:
                self._deliver(key)
            return answer
        if self.bucket is not None and not self.bucket.take():
            self.throttled += 1
            return throttled
        if self.fail_half:
            n = next(self._half)
            if n % 2 == 0:
                if n % 4 == 0:  # every other failure happens after accepting the message
                    self._deliver(key)
                return Answer(500, {"error": "internal"})
        return None

    def _deliver(self, key: str) -> str:
        self.accepted[key] += 1
        if key not in self.seen_keys:
            self.seen_keys[key] = f"msg-{next(self._ids)}"
            self.delivered[key] += 1
        return self.seen_keys[key]

    # -- SendGrid v3 ---------------------------------------------------------------------------

    def _sendgrid(self, request: Request) -> Answer:
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return Answer(401, {"errors": [{"message": "authorization required"}]})
        body = request.json()
        errors = []
        if not body.get("personalizations") or not body["personalizations"][0].get("to"):
            errors.append({"field": "personalizations", "message": "required"})
        if not body.get("subject"):
            errors.append({"field": "subject", "message": "required"})
        if not body.get("content"):
            errors.append({"field": "content", "message": "required"})
        if "@" not in body.get("from", {}).get("email", ""):
            errors.append({"field": "from.email", "message": "invalid"})
        if errors:
            return Answer(400, {"errors": errors})
        to = body["personalizations"][0]["to"][0]["email"]
        if to.endswith("@bounce.test"):
            return Answer(400, {"errors": [{"field": "to", "message": "invalid recipient"}]})
        key = request.headers.get("idempotency-key") or f"anon-{len(self.requests)}"
        steered = self._steer(
            request, key, Answer(429, {"errors": [{"message": "rate"}]}, {"Retry-After": "1"})
        )
        if steered is not None:
            return steered
        return Answer(202, None, {"X-Message-Id": self._deliver(key)})

    # -- Aliyun SMS ----------------------------------------------------------------------------

    def _aliyun(self, request: Request) -> Answer:
        form = request.form()
        required = ["Action", "PhoneNumbers", "SignName", "TemplateCode", "AccessKeyId"]
        if form.get("AccessKeyId") != ALIYUN_KEY_ID:
            return Answer(404, {"Code": "InvalidAccessKeyId.NotFound", "RequestId": "r"})
        if aliyun_signature(ALIYUN_SECRET, "POST", form) != form.get("Signature"):
            return Answer(400, {"Code": "SignatureDoesNotMatch", "RequestId": "r"})
        if any(not form.get(name) for name in required) or form["Action"] != "SendSms":
            return Answer(400, {"Code": "MissingParameter", "RequestId": "r"})
        if not form["PhoneNumbers"].isdigit() or form["PhoneNumbers"].startswith("000"):
            return Answer(200, {"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "bad number"})
        try:
            params = json.loads(form.get("TemplateParam") or "{}")
        except ValueError:
            return Answer(200, {"Code": "isv.INVALID_JSON_PARAM"})
        if form["TemplateCode"] == "SMS_NEEDS_NAME" and "name" not in params:
            return Answer(200, {"Code": "isv.TEMPLATE_MISSING_PARAMETERS"})
        key = form.get("OutId") or f"anon-{len(self.requests)}"
        steered = self._steer(request, key, Answer(400, {"Code": "Throttling.User"}))
        if steered is not None:
            return steered
        return Answer(200, {"Code": "OK", "Message": "OK", "BizId": self._deliver(key)})

    # -- Twilio --------------------------------------------------------------------------------

    def _twilio(self, request: Request) -> Answer:
        expected = base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return Answer(401, {"code": 20003, "message": "Authenticate", "status": 401})
        form = request.form()
        if not form.get("To", "").startswith("+") or not form["To"][1:].isdigit():
            return Answer(400, {"code": 21211, "message": "Invalid 'To' Phone Number"})
        if not form.get("Body"):
            return Answer(400, {"code": 21602, "message": "Message body is required"})
        key = request.headers.get("i-twilio-idempotency-token") or f"anon-{len(self.requests)}"
        steered = self._steer(
            request, key, Answer(429, {"code": 20429, "message": "Too Many Requests"})
        )
        if steered is not None:
            return steered
        return Answer(201, {"sid": "SM" + self._deliver(key), "status": "queued"})

    # -- WeCom ---------------------------------------------------------------------------------

    def _wecom_token(self, request: Request) -> Answer:
        if request.query.get("corpid") != CORP_ID or request.query.get("corpsecret") != CORP_SECRET:
            return Answer(200, {"errcode": 40001, "errmsg": "invalid credential"})
        self.token_fetches += 1
        token = f"wecom-token-{self.token_fetches}"
        self.wecom_tokens[token] = True
        return Answer(
            200, {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200}
        )

    def _wecom_send(self, request: Request) -> Answer:
        token = request.query.get("access_token", "")
        if token not in self.wecom_tokens:
            return Answer(200, {"errcode": 40014, "errmsg": "invalid access_token"})
        if not self.wecom_tokens[token]:
            return Answer(200, {"errcode": 42001, "errmsg": "access_token expired"})
        body = request.json()
        if body.get("chat_type") != "single" or not body.get("external_userid"):
            return Answer(200, {"errcode": 41035, "errmsg": "missing external_userid"})
        if not body.get("sender"):
            return Answer(200, {"errcode": 41048, "errmsg": "missing sender"})
        if "text" not in body and "attachments" not in body:
            return Answer(200, {"errcode": 41043, "errmsg": "empty message"})
        (user,) = body["external_userid"]
        if user == WECOM_STRANGER:
            return Answer(200, {"errcode": 0, "errmsg": "ok", "fail_list": [user], "msgid": "m0"})
        steered = self._steer(request, user, Answer(200, {"errcode": 45009, "errmsg": "freq"}))
        if steered is not None:
            return steered
        # WeCom has no idempotency key: every accepted request is a message.
        self.delivered[user] += 1
        self.accepted[user] += 1
        msgid = f"msg{next(self._ids)}"  # opaque, as WeCom's are
        return Answer(200, {"errcode": 0, "errmsg": "ok", "fail_list": [], "msgid": msgid})

    # -- FCM v1 --------------------------------------------------------------------------------

    def _fcm(self, request: Request) -> Answer:
        if request.path != f"/v1/projects/{FCM_PROJECT}/messages:send":
            return Answer(404, {"error": {"code": 404, "status": "NOT_FOUND"}})
        if request.headers.get("authorization") != f"Bearer {FCM_TOKEN}":
            return Answer(401, {"error": {"code": 401, "status": "UNAUTHENTICATED"}})
        message = request.json().get("message", {})
        if not message.get("token") or "notification" not in message:
            return _fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT")
        if message["token"] == FCM_GONE:
            return _fcm_error(404, "NOT_FOUND", "UNREGISTERED")
        key = message.get("data", {}).get("send_key", "")
        throttled = _fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED")
        throttled.headers["Retry-After"] = "2"
        steered = self._steer(request, key, throttled)
        if steered is not None:
            return steered
        return Answer(200, {"name": f"projects/{FCM_PROJECT}/messages/{self._deliver(key)}"})


def _fcm_error(status: int, grpc_status: str, code: str) -> Answer:
    detail = {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}
    error = {"code": status, "message": code.lower(), "status": grpc_status, "details": [detail]}
    return Answer(status, {"error": error})
