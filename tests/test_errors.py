import inspect

import pytest
from pydantic import BaseModel, ValidationError, model_validator

import wsresearch.errors as errors
from wsresearch import (
    ExchangeError,
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
    # An exchange's error report is about a request, not the connection.
    assert issubclass(ExchangeError, WsResearchError)
    assert not issubclass(ExchangeError, WebSocketError)


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
    report = ExchangeError("Invalid symbol", error_type="error")
    assert (report.message, report.error_type, str(report)) == (
        "Invalid symbol", "error", "Invalid symbol")


class Point(BaseModel):
    x: int
    y: int
    z: int

    @model_validator(mode="after")
    def _not_origin(self) -> "Point":
        if self.x == self.y == self.z == 0:
            raise ValueError("the origin is not a point here")
        return self


def validation_error(**fields: object) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        Point(**fields)  # type: ignore[arg-type]
    return caught.value


def test_first_error_puts_a_validation_error_in_one_line() -> None:
    three = validation_error(x="a", y="b", z="c")
    assert errors.first_error(three) == (
        "x: Input should be a valid integer, unable to parse string as an integer; and 2 more")
    assert errors.first_error(three, limit=3).count("Input should be") == 3
    assert "more" not in errors.first_error(three, limit=3)
    assert errors.first_error(three, limit=0).startswith("x: ")  # at least one is spelled out
    one = validation_error(x=1, y=1)
    assert errors.first_error(one) == "z: Field required"
    model_level = validation_error(x=0, y=0, z=0)
    assert errors.first_error(model_level) == "Value error, the origin is not a point here"
