"""Reading the relay's resume point: a Kafka that is not ready is retried by the relay (the
error stays resumable), a foreign record is not."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import pytest

from kdm import relay_log
from kdm.avro import AvroCodec
from kdm.config.service import KafkaConfig
from kdm.errors import ERR_KAFKA_ADMIN, ERR_KAFKA_DECODE, KdmError


class _Reader:
    """A TopicReader whose `last()` raises `error`."""

    error: KdmError

    def __init__(self, *_: Any) -> None:
        pass

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        return None

    def last(self) -> None:
        raise self.error


@pytest.mark.parametrize(("error", "code", "resumable"), [
    (ERR_KAFKA_ADMIN("Local: Unknown partition", op="watermarks", target="t.relay.s"),
     52001, True),
    (ERR_KAFKA_DECODE(where="t.relay.s@7", problem="not avro"), 30007, False),
])
def test_resume_point_errors(monkeypatch: pytest.MonkeyPatch, error: KdmError, code: int,
                             resumable: bool) -> None:
    _Reader.error = error
    monkeypatch.setattr(relay_log, "TopicReader", _Reader)
    with pytest.raises(KdmError) as caught:
        relay_log.last_relay_record(KafkaConfig(), "t.relay.s", AvroCodec())
    assert (caught.value.code, caught.value.spec.resumable) == (code, resumable)
