"""python-etcd3's watch events (``etcd3.events``): attributes of the event's KeyValue, and of its
previous one as ``prev_*``."""
from __future__ import annotations

from typing import Any

from pyetcd.proto.mvccpb import kv_pb2


class Event:
    def __init__(self, event: kv_pb2.Event) -> None:
        self._event = event
        self._kv = event.kv
        self.key = event.kv.key

    def __getattr__(self, name: str) -> Any:
        if name.startswith("prev_"):
            return getattr(self._event.prev_kv, name[len("prev_"):])
        return getattr(self._kv, name)

    def __str__(self) -> str:
        return f"{self.__class__} key={self.key!r} value={self._kv.value!r}"


class PutEvent(Event):
    pass


class DeleteEvent(Event):
    pass


def new_event(event: kv_pb2.Event) -> Event:
    return (DeleteEvent if event.type == kv_pb2.Event.DELETE else PutEvent)(event)
