"""moto server over real HTTP: SQS, SES and S3 for tests and local runs.

Two differences between moto's own server and the real services are fixed here (the substrate,
not the code under test): moto's SQS backend is not thread-safe (a CreateQueue with a
RedrivePolicy walks every queue while concurrent creates add to the same dict, so it answers
500 "dictionary changed size during iteration" under load, and that walk makes each redriven
create O(queues)); and werkzeug's dev server closes the connection after every answer, so every
boto3 call paid a new TCP connection and a new server thread, which real AWS endpoints do not
make clients do.

moto's CPU per call is cut where its answers cannot change (a 5,000-environment burst sends it
15,000 CreateQueue calls): helpers it runs on every request remember their answers. Each such
change is explained where it is made; tests/integration/devkit/test_moto_answers.py holds every
answer equal to stock moto's server.
"""

from __future__ import annotations

import email.utils
import functools
import http.client
import io
import json
import logging
import os
import random
import re
import string
import threading
import time
import types
import urllib.request
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from botocore.exceptions import ClientError
from flask import Response as FlaskResponse
from flask import signals as flask_signals
from flask.sessions import SecureCookieSessionInterface
from flask_cors.core import (
    ACL_ORIGIN,
    ACL_REQUEST_HEADER_PRIVATE_NETWORK,
    FLASK_CORS_EVALUATED,
    get_cors_headers,
    try_match_pattern,
)
from moto.core import request as moto_request
from moto.core import utils as moto_utils
from moto.core.base_backend import BackendDict
from moto.core.request import PRESERVED_HEADER_NAMES_ENVIRON_KEY
from moto.moto_api import recorder
from moto.moto_api._internal.moto_random import MotoRandom
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.sqs import models as sqs_models
from moto.utilities import utils as moto_partitions
from werkzeug.datastructures import EnvironHeaders as WerkzeugEnvironHeaders
from werkzeug.exceptions import BadRequestKeyError, HTTPException, InternalServerError
from werkzeug.sansio import utils as werkzeug_urls
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request as WerkzeugRequest

REGION = "us-east-1"
# moto accepts any credentials; fixed ones keep boto3 from looking for real ones.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


class _QueueTable(dict[str, Any]):
    """moto's per-region queue dict whose iterations walk a snapshot: a request listing or
    scanning queues while another thread creates one no longer fails with a RuntimeError."""

    def values(self) -> list[Any]:  # type: ignore[override]
        return list(super().values())

    def items(self) -> list[tuple[str, Any]]:  # type: ignore[override]
        return list(super().items())

    def keys(self) -> list[str]:  # type: ignore[override]
        return list(super().keys())

    def __iter__(self) -> Any:
        return iter(list(super().keys()))


def _fix_sqs_backend() -> None:
    """Make moto's SQS backend safe under concurrent requests and its redriven creates O(1);
    every error answer still comes from moto's own code."""
    backend_class: Any = sqs_models.SQSBackend
    if getattr(backend_class, "_webordinary_fixed", False):
        return
    original_init = backend_class.__init__
    queue_class: Any = sqs_models.Queue
    original_setup_dlq = queue_class._setup_dlq

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.queues = _QueueTable(self.queues)

    def setup_dlq(self: Any, policy: Any) -> None:
        # The DLQ is named by its ARN, whose last part is the queue's name: one dict lookup
        # instead of a walk over every queue. Anything unusual takes moto's own path (and error).
        try:
            parsed = json.loads(policy) if isinstance(policy, str) else policy
            arn = parsed["deadLetterTargetArn"]
            count = int(parsed["maxReceiveCount"])
        except (ValueError, TypeError, KeyError):
            return original_setup_dlq(self, policy)  # type: ignore[no-any-return]
        backend = sqs_models.sqs_backends[self.account_id][self.region]
        dlq = backend.queues.get(str(arn).rsplit(":", 1)[-1]) if isinstance(arn, str) else None
        if dlq is None or dlq.queue_arn != arn or (self.fifo_queue and not dlq.fifo_queue):
            return original_setup_dlq(self, policy)  # type: ignore[no-any-return]
        self.redrive_policy = {**parsed, "maxReceiveCount": count}
        self.dead_letter_queue = dlq
        return None

    backend_class.__init__ = init
    queue_class._setup_dlq = setup_dlq
    backend_class._webordinary_fixed = True


def _cached_by_argument(argument: Any, _cache: Any = None, _compute: Any = None) -> Any:
    """A pure one-argument function with its answers remembered (a body for its code)."""
    try:
        return _cache[argument]
    except KeyError:
        result = _compute(argument)
        if len(_cache) < 4096:  # names, regions: a small set
            _cache[argument] = result
        return result
    except TypeError:  # unhashable: the function's own answer (or error)
        return _compute(argument)


def _cached_by_arguments(*args: Any, _cache: Any = None, _compute: Any = None,
                         **kwargs: Any) -> Any:
    """A pure function with its answers remembered by positional arguments (a body for its
    code); a call with keywords, or whose answer is an exception, is not remembered."""
    if kwargs:
        return _compute(*args, **kwargs)
    try:
        return _cache[args]
    except KeyError:
        result = _compute(*args)
        if len(_cache) < 4096:
            _cache[args] = result
        return result
    except TypeError:
        return _compute(*args)


def _method_names_cached(clazz: Any, _cache: Any = None, _compute: Any = None) -> Any:
    """method_names_from_class with its answer remembered per class (a body for the
    original's code); each caller gets its own list."""
    try:
        names = _cache[clazz]
    except KeyError:
        names = _cache[clazz] = tuple(_compute(clazz))
    return list(names)


def _remember(function: Any, body: Any = _cached_by_argument) -> None:
    """Give `function` the code of `body`, which looks answers up in a dict before calling a
    copy of the original. Swapping the code (not the module attribute) reaches every module
    that imported the function by name, including backends moto imports later."""
    if function.__code__ is body.__code__:
        return
    original = types.FunctionType(function.__code__, function.__globals__, function.__name__,
                                  function.__defaults__, function.__closure__)
    original.__kwdefaults__ = function.__kwdefaults__
    function.__code__ = body.__code__
    if body is _cached_by_arguments:
        function.__defaults__ = None
        function.__kwdefaults__ = {"_cache": {}, "_compute": original}
    else:
        function.__defaults__ = ({}, original)  # body's _cache and _compute


def _iterate_headers(self: Any, _moto: Any = None) -> Any:
    """moto's EnvironHeaders iteration (names of S3 metadata headers as sent) when a request
    has such a name; werkzeug's, which it extends, when it has none (moto renamed nothing then,
    after converting every name back to its environ key)."""
    if self.environ.get(PRESERVED_HEADER_NAMES_ENVIRON_KEY):
        return _moto(self)
    return WerkzeugEnvironHeaders.__iter__(self)


_ENVIRON_KEYS: dict[str, str] = {}


def _environ_name(key: str) -> str:
    """A header name's environ key, remembered per name."""
    name = _ENVIRON_KEYS.get(key)
    if name is None:
        upper = key.upper().replace("-", "_")
        name = upper if upper in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{upper}"
        if type(key) is str and len(_ENVIRON_KEYS) < 4096:
            _ENVIRON_KEYS[key] = name
    return name


def _header_or_default(self: Any, key: str, default: Any = None, type: Any = None) -> Any:
    """werkzeug's Headers.get on the environ without raising and catching a KeyError for a
    header the request lacks (moto asks for several absent ones per request)."""
    if not isinstance(key, str):
        return default  # werkzeug: BadRequestKeyError, a KeyError, caught
    value = self.environ.get(_environ_name(key), _ABSENT)
    if value is _ABSENT:
        return default
    if type is None:
        return value
    try:
        return type(value)
    except ValueError:
        return default


def _has_header(self: Any, key: str) -> bool:
    """werkzeug's Headers.__contains__ on the environ, without an exception when absent."""
    return isinstance(key, str) and _environ_name(key) in self.environ


_ABSENT = object()


def _environ_key(self: Any, key: str) -> str:
    """werkzeug's EnvironHeaders._get_key (a header's value by its name), with each name's
    environ key ("content-type" -> CONTENT_TYPE, "x-amz-target" -> HTTP_X_AMZ_TARGET)
    remembered (`_environ_name`): moto looks up ~30 headers per request."""
    if not isinstance(key, str):
        raise BadRequestKeyError(key)
    return self.environ[_environ_name(key)]  # type: ignore[no-any-return]


def _random_string(self: Any, length: int = 20, include_digits: bool = True,
                   lower_case: bool = False) -> str:
    """MotoRandom.get_random_string (request ids: 52 characters per answer), drawing the same
    numbers from the same generator as its `choice` per character did (`_randbelow` by
    rejection over getrandbits), so a seeded moto still answers with the same ids."""
    pool = string.ascii_letters + (string.digits if include_digits else "")
    size = len(pool)
    bits = size.bit_length()
    draw = self.getrandbits
    chosen = []
    for _ in range(length):
        number = draw(bits)
        while number >= size:
            number = draw(bits)
        chosen.append(pool[number])
    text = "".join(chosen)
    return text.lower() if lower_case else text


def _speed_up_moto() -> None:
    """Helpers moto runs on every request, made cheaper without changing an answer.
    moto converted each action's and attribute's name from CamelCase character by character
    (15 calls per CreateQueue, a sixth of its CPU per call) and listed the response class's
    methods with inspect.getmembers on every request (to check that the action is one): both
    answers depend only on their argument (a name, a class) and are remembered, as are those
    of other pure helpers it calls per request (a region's partition, werkzeug's host and URL
    root) and each header name's environ key. Account lookups skip moto's global lock once
    the account exists, and request ids are drawn without a `choice` call per character (the
    same numbers from the same generator)."""
    _remember(moto_utils.camelcase_to_underscores)
    _remember(moto_utils.method_names_from_class, _method_names_cached)
    _remember(moto_partitions.get_partition)
    _remember(werkzeug_urls.get_current_url, _cached_by_arguments)
    _remember(werkzeug_urls.get_host, _cached_by_arguments)
    headers_class: Any = moto_request.EnvironHeaders
    headers_class._get_key = _environ_key
    headers_class.get = _header_or_default
    headers_class.__contains__ = _has_header
    if not getattr(headers_class, "_webordinary_iterates", False):
        headers_class.__iter__ = functools.partialmethod(_iterate_headers,
                                                         _moto=headers_class.__iter__)
        headers_class._webordinary_iterates = True
    _look_accounts_up_without_lock()
    random_class: Any = MotoRandom
    if random_class._randbelow is getattr(random.Random, "_randbelow_with_getrandbits", None):
        random_class.get_random_string = _random_string


def _look_accounts_up_without_lock() -> None:
    """BackendDict[account]: an account's backends once they exist, without moto's global
    lock. moto took the lock and listed the dict's keys on every lookup (several per request,
    with every server thread queueing on that one lock); it adds an account and registers the
    dict under the lock, and its reset clears both, so a key present means both were done."""
    backend_dict: Any = BackendDict
    if getattr(backend_dict, "_webordinary_unlocked", False):
        return
    locked = backend_dict.__getitem__

    def lookup(self: Any, account_id: str) -> Any:
        try:
            return dict.__getitem__(self, account_id)
        except KeyError:
            return locked(self, account_id)

    backend_dict.__getitem__ = lookup
    backend_dict._webordinary_unlocked = True


_http_client: Any = http.client  # its header reader and parser are module-private
_PLAIN_HEADER = re.compile(rb"([!-9;-~]+):[ \t]*([^\r\n]*)\r\n")
_PARSED_BODIES = ("multipart/", "message/")  # the email parser reads their (empty) bodies


def plain_headers(lines: list[bytes], message_class: Any) -> Any:
    """The HTTPMessage http.client.parse_headers makes of these header lines (ending in the
    empty line), when each is a plain `Name: value` line; None for anything else."""
    if not lines or lines[-1] != b"\r\n":
        return None
    headers = []
    for line in lines[:-1]:
        match = _PLAIN_HEADER.fullmatch(line)
        if match is None:
            return None
        name, value = match[1].decode("iso-8859-1"), match[2].decode("iso-8859-1")
        if name.lower() == "content-type" and value.lower().startswith(_PARSED_BODIES):
            return None
        headers.append((name, value))
    message = message_class()
    message._headers = headers
    message._payload = ""
    return message


class _KeepAliveHandler(MotoRequestHandler):
    """moto's request handler, keeping HTTP/1.1 connections open like AWS endpoints do.

    werkzeug closes every connection because it cannot tell where an unread request body ends
    (it drains the socket after each answer); here the body (Content-Length) is read in full
    before moto sees it and the answer is sent with its length, so the next request line is
    always where the server looks for it. A chunked request body still closes its connection.
    The head and the body go out in one write (as two, with Nagle's algorithm on, the body
    waited for the client's delayed ACK, ~40 ms per answer; without it, each answer cost two
    sends; AWS endpoints answer in one go). The access log line is only formatted when
    werkzeug's logger would print it (werkzeug built it, time stamp and all, per request).
    """

    disable_nagle_algorithm = True
    wbufsize = -1  # a buffered writer: head and body leave in one send, at the flush

    _date: tuple[int, str] = (0, "")

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if logging.getLogger("werkzeug").isEnabledFor(logging.INFO):
            super().log_request(code, size)

    def parse_request(self) -> bool:
        """http.server's parse_request for a plain HTTP/1.1 request line, with the headers read
        as http.client reads them and, when every line is a plain `Name: value`, put into the
        same HTTPMessage without the email package's parser (a tenth of moto's CPU per call).
        Anything else (other versions, folded or odd lines, multipart) takes the stdlib's path."""
        requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = requestline.split()
        if (len(words) != 3 or words[2] != "HTTP/1.1" or self.protocol_version < "HTTP/1.1"
                or words[1].startswith("//")):
            return super().parse_request()
        self.command, self.path = words[0], words[1]
        self.request_version, self.requestline = words[2], requestline
        self.close_connection = False
        try:
            lines = _http_client._read_headers(self.rfile)
        except http.client.LineTooLong as error:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Line too long",
                            str(error))
            return False
        except http.client.HTTPException as error:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers",
                            str(error))
            return False
        self.headers = plain_headers(lines, self.MessageClass) or (
            _http_client._parse_header_lines(lines, self.MessageClass))
        connection = self.headers.get("Connection", "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive":
            self.close_connection = False
        if self.headers.get("Expect", "").lower() == "100-continue":
            return self.handle_expect_100()
        return True

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The Date header, formatted once a second rather than for every answer."""
        if timestamp is not None:
            return super().date_time_string(timestamp)
        now = int(time.time())
        second, text = _KeepAliveHandler._date
        if second != now:
            text = email.utils.formatdate(now, usegmt=True)
            _KeepAliveHandler._date = (now, text)
        return text

    def make_environ(self) -> dict[str, Any]:
        """moto's environ; its pass over the headers for underscored names (S3 metadata) only
        when a header name has an underscore (without one it adds an empty name map)."""
        if any("_" in name for name in self.headers):
            return super().make_environ()
        environ = WSGIRequestHandler.make_environ(self)
        environ[PRESERVED_HEADER_NAMES_ENVIRON_KEY] = {}
        return environ

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").lower() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.wfile.flush()
        environ = self.make_environ()
        length = self.headers.get("Content-Length")
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        if length is not None and not chunked:
            environ["wsgi.input"] = io.BytesIO(self.rfile.read(int(length)))
        elif not chunked:
            environ["wsgi.input"] = io.BytesIO(b"")
        answer: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Any:
            answer["status"], answer["headers"] = status, headers
            return lambda data: answer.setdefault("written", []).append(data)

        try:
            result = self.server.app(environ, start_response)
            try:
                body = b"".join([*answer.get("written", []), *result])
            finally:
                if hasattr(result, "close"):
                    result.close()
        except Exception:  # moto's own bug: werkzeug's 500 answer, logged
            logging.getLogger("werkzeug").exception("moto failed on %s %s", self.command,
                                                    self.path)
            answer.clear()
            body = b"".join(InternalServerError()(environ, start_response))
            self.close_connection = True
        code, _, reason = answer["status"].partition(" ")
        self.send_response(int(code), reason)
        head = self.command == "HEAD"  # its Content-Length is the object's, not the body's
        for key, value in answer["headers"]:
            if key.lower() not in ("connection", "transfer-encoding") and not (
                    key.lower() == "content-length" and not head):
                self.send_header(key, value)
        if not head:
            self.send_header("Content-Length", str(len(body)))
        if chunked:
            self.send_header("Connection", "close")
        self.end_headers()
        if not head and int(code) not in (204, 304):
            self.wfile.write(body)
        self.wfile.flush()


class _Dispatcher(DomainDispatcherApplication):
    """moto's dispatcher, remembering which backend serves a host: moto matched the host
    against every service's URL patterns on every request (a tenth of its CPU under load).
    SQS's POSTs to "/" (every call of its JSON protocol) take a lean lane to moto's view."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._backends: dict[str | None, Any] = {}
        self._lanes: dict[Any, Any] = {}

    def get_backend_for_host(self, host: str | None) -> Any:
        if host not in self._backends:
            self._backends[host] = super().get_backend_for_host(host)
        return self._backends[host]

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        app = self.get_application(environ)
        if (environ.get("PATH_INFO") == "/" and environ.get("REQUEST_METHOD") == "POST"
                and getattr(app, "service", None) == "sqs"):
            lane = self._lanes.get(app, False)
            if lane is False:
                lane = self._lanes[app] = _LeanLane.of(app)
            if lane is not None:
                return lane(environ, start_response)
        return app(environ, start_response)


def lane_request_class(app: Any) -> Any:
    """The app's request class (moto's) for a request served outside Flask's contexts. Flask's
    request limits read the app's config through `current_app`, which outside a context raises
    and catches a RuntimeError per lookup (three per request, ~20 us); here they read the app's
    config directly, as Flask does inside a context. Flask's debug-mode helper that replaces
    `request.files` (to explain a missing file in a request that is not multipart/form-data)
    is not attached: SQS reads no files."""
    config = app.config

    class LaneRequest(app.request_class):  # type: ignore[misc]
        @property
        def max_content_length(self) -> Any:
            if self._max_content_length is not None:
                return self._max_content_length
            return config["MAX_CONTENT_LENGTH"]

        @max_content_length.setter
        def max_content_length(self, value: Any) -> None:
            self._max_content_length = value

        @property
        def max_form_memory_size(self) -> Any:
            if self._max_form_memory_size is not None:
                return self._max_form_memory_size
            return config["MAX_FORM_MEMORY_SIZE"]

        @max_form_memory_size.setter
        def max_form_memory_size(self, value: Any) -> None:
            self._max_form_memory_size = value

        @property
        def max_form_parts(self) -> Any:
            if self._max_form_parts is not None:
                return self._max_form_parts
            return config["MAX_FORM_PARTS"]

        @max_form_parts.setter
        def max_form_parts(self, value: Any) -> None:
            self._max_form_parts = value

        def _load_form_data(self) -> None:
            WerkzeugRequest._load_form_data(self)

    return LaneRequest


class _LeanLane:
    """What moto's Flask app does for a request to one URL rule, without Flask's per-request
    machinery: SQS's JSON protocol (every call a POST to "/") went through a request and an
    application context, sessions, signals, URL matching and after-request hooks, ~0.2 ms of
    CPU per call, all to call one view: moto's own `dispatch`.

    Here, as in moto's view (`convert_to_flask_response`): moto's request class over the
    environ, moto's recorder, `dispatch(request, raw_url, headers)` (a ClientError answers 400),
    and Flask's Response of its result. As in Flask with its debug flag and flask-cors's hooks,
    which moto installs: an HTTPException answers as itself unless the app traps it, any other
    exception propagates (a 500), and flask-cors's own header computation runs over its own
    resources. Only an app with nothing else registered (no before/teardown hooks, error
    handlers, signal receivers, sessions) gets a lane; others keep Flask's path.
    """

    def __init__(self, app: Any, rule: Any, view: Any, cors: list[Any]) -> None:
        self.app, self.rule, self.view, self.cors = app, rule, view, cors
        self.request_class = lane_request_class(app)
        self._plain_cors: dict[int, list[tuple[str, Any]]] = {}

    @classmethod
    def of(cls, app: Any) -> _LeanLane | None:
        registered = (app.before_request_funcs, app.teardown_request_funcs,
                      app.teardown_appcontext_funcs, app.url_value_preprocessors,
                      app.error_handler_spec)
        receivers = (flask_signals.request_started, flask_signals.request_finished,
                     flask_signals.got_request_exception, flask_signals.request_tearing_down,
                     flask_signals.appcontext_pushed, flask_signals.appcontext_popped,
                     flask_signals.appcontext_tearing_down)
        after = dict(app.after_request_funcs)
        hooks = after.pop(None, [])
        if (any(registered) or any(after.values()) or any(r.receivers for r in receivers)
                or app.secret_key is not None
                or type(app.session_interface) is not SecureCookieSessionInterface
                or len(hooks) > 1):
            return None
        cors: list[Any] = []
        for hook in hooks:  # flask-cors's after-request hook: its resources, from its closure
            if (hook.__name__ != "cors_after_request"
                    or hook.__code__.co_freevars != ("resources",)):
                return None
            cors = list(hook.__closure__[0].cell_contents)
        try:
            rule, _ = app.url_map.bind("localhost").match("/", method="POST", return_rule=True)
        except HTTPException:
            return None
        view = app.view_functions.get(rule.endpoint)
        if not isinstance(view, moto_utils.convert_to_flask_response):
            return None
        return cls(app, rule, view, cors)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        app = self.app
        request = self.request_class(environ)
        request.json_module = app.json
        request.url_rule, request.view_args = self.rule, {}
        try:
            recorder._record_request(request)
            try:
                # dict(request.headers) as moto builds it, from one pass over the headers (a
                # mapping's dict() looked each name up again)
                result = self.view.callback(request, request.raw_url, dict(iter(request.headers)))
            except ClientError as exc:
                result = 400, {}, exc.response["Error"]["Message"]
            if len(result) == 3:
                status, headers, content = result
            else:
                status, headers, content = 200, {}, result
            response = FlaskResponse(response=content, status=status, headers=headers)
        except HTTPException as error:
            if isinstance(error, BadRequestKeyError) and (
                    app.debug or app.config["TRAP_BAD_REQUEST_ERRORS"]):
                error.show_exception = True
            if app.trap_http_exception(error):
                raise
            response = app.response_class.force_type(error, environ)
        self._add_cors(request, response)
        return response(environ, start_response)

    def _add_cors(self, request: Any, response: Any) -> None:
        """flask-cors's after-request hook, reading the request given rather than Flask's.
        Outside a preflight its headers depend on the request's Origin and
        Access-Control-Request-Private-Network headers only: without either (every SDK call)
        they are computed once per resource."""
        origins = response.headers.getlist(ACL_ORIGIN)  # its .get() raised a KeyError if none
        if origins and origins[0]:
            return
        path = unquote(request.path)
        for index, (pattern, options) in enumerate(self.cors):
            if try_match_pattern(path, pattern, caseSensitive=True):
                if hasattr(response, FLASK_CORS_EVALUATED):
                    return
                headers = request.headers
                plain = (request.method != "OPTIONS" and "Origin" not in headers
                         and ACL_REQUEST_HEADER_PRIVATE_NETWORK not in headers)
                added = self._plain_cors.get(index) if plain else None
                if added is None:
                    added = list(get_cors_headers(options, headers, request.method).items())
                    if plain:
                        self._plain_cors[index] = added
                for key, value in added:
                    response.headers.add(key, value)
                return


@dataclass
class MotoServer:
    """A running moto server and its endpoint URL."""

    server: BaseWSGIServer
    endpoint_url: str

    def reset(self) -> None:
        """Drop every queue, message and sent mail (moto's own reset API)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def sent_emails(self) -> list[dict[str, Any]]:
        """Mail sent through SES so far (moto keeps it instead of delivering)."""
        with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/data.json", timeout=10) as r:
            data: dict[str, Any] = json.load(r)
        ses = data.get("ses", {})
        return list(ses.get("Message", [])) + list(ses.get("RawMessage", []))

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_moto(host: str = "127.0.0.1", port: int = 0) -> MotoServer:
    """Start moto on a free loopback port and export fake credentials for boto3."""
    for key, value in FAKE_CREDENTIALS.items():
        os.environ.setdefault(key, value)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log line per request
    _fix_sqs_backend()
    _speed_up_moto()
    server = make_server(host, port, _Dispatcher(create_backend_app),
                         threaded=True, request_handler=_KeepAliveHandler)
    # Kept-alive idle connections must not hold the process or make server_close() wait.
    server.daemon_threads = True  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True, name="moto").start()
    bound_host, bound_port = server.server_address[:2]
    return MotoServer(server=server, endpoint_url=f"http://{bound_host!s}:{bound_port}")
