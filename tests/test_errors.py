import inspect

import wsresearch.errors as errors
from wsresearch import (
    InvalidURLError,
    MaxReconnectsExceededError,
    NotConnectedError,
    QueueClosedError,
    QueueFullError,
    UnknownChannelError,
    WebSocketAuthError,
    WebSocketError,
    WsResearchError,
)


def test_every_error_has_one_root_and_its_builtin() -> None:
    assert issubclass(WebSocketError, WsResearchError)
    assert issubclass(WebSocketAuthError, WebSocketError)
    assert issubclass(MaxReconnectsExceededError, WebSocketError)
    assert issubclass(NotConnectedError, WebSocketError)
    assert issubclass(NotConnectedError, RuntimeError)
    assert issubclass(InvalidURLError, ValueError)
    assert issubclass(QueueFullError, RuntimeError)
    assert issubclass(QueueClosedError, RuntimeError)
    assert issubclass(UnknownChannelError, KeyError)


def test_the_tree_in_the_docstring_names_every_error() -> None:
    classes = [
        name for name, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, Exception) and obj.__module__ == errors.__name__
    ]
    assert set(classes) == set(errors.__all__)
    for name in classes:
        assert name in (errors.__doc__ or ""), name


def test_errors_carry_their_context() -> None:
    exc = WebSocketError("closed", code=4401)
    assert (exc.message, exc.code, str(exc)) == ("closed", 4401, "closed")
    assert MaxReconnectsExceededError(5).attempts == 5
    assert "5" in str(MaxReconnectsExceededError(5))
    assert WebSocketAuthError(code=4401).code == 4401
    assert str(UnknownChannelError("unknown channel 'x'")) == "unknown channel 'x'"
