"""A partition's records taken off its Faust channel in bulk: :class:`PartitionIntake`.

Faust's consumer thread fetches, its conductor decodes each message into an event and puts it
on the partition's channel queue (one queue per isolated actor). Iterating the
:class:`faust.Stream` over that queue costs ~50–200 µs of CPU per event here (an
``asyncio.sleep(0)``, processors, sensors and the take buffer's bookkeeping per event), and
``noack_take`` hands over only what trickled through that machinery within its window: batches
of 1–8 records whatever the backlog. The intake reads the same queue directly instead: it
waits for one event, then takes everything already queued (up to ``size``), waiting
``within`` once if that was fewer. A batch is therefore whatever accumulated while the last
one was being handled — it grows with the handler's latency, up to ``size``.

Bounded, with back-pressure: the queue holds at most ``stream_buffer_maxsize`` events
(``SYNAPSEOPS_ROAD_BUFFER_RECORDS``, set by :func:`streams.app.create_app`); above 80% of it
Faust takes the partition out of its fetch set (``Consumer.on_buffer_full``: the partition is
paused, aiokafka holds at most the one fetch response it has) and puts it back once the queue
drained below 40% — the taking here goes through ``get``/``get_nowait``, which is what fires
that resume. ``broker_max_poll_records`` keeps one poll under the headroom between the two, so
a full partition never stalls the conductor for the others.

What Faust's stream did per event and the intake keeps: an event of an older consumer
generation or taken while flow is suspended (a rebalance in progress) is dropped unacked,
never handled (its partition is re-read from the committed offset); every event handed out is
*tracked* (``Consumer.track_message``), so ``stream_wait_empty`` makes a rebalance wait for the
batch in hand; :meth:`ack` acks through the event (its message's refcount, then the consumer)
and the sensors, lowest offset first.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import cast

import faust
from faust.types import ChannelT, EventT


class PartitionIntake:
    """Batches of events of one actor's channel (module docstring); :meth:`ack` when durable."""

    def __init__(self, app: faust.App, stream: faust.StreamT[bytes], size: int, within_s: float):
        self.app = app
        # A stream of a topic reads a channel (``app.stream`` made it the topic's iterator).
        self.channel = cast(ChannelT[bytes], stream.channel)
        self.queue = self.channel.queue
        self.size = size
        self.within_s = within_s

    async def batches(self) -> AsyncIterator[list[EventT[bytes]]]:
        """Each batch in offset order; the next only after the caller is done with this one."""
        while True:
            batch: list[EventT[bytes]] = []
            try:
                self._keep(await self.queue.get(), batch)
                self._drain(batch)
                if len(batch) < self.size:
                    await asyncio.sleep(self.within_s)
                    self._drain(batch)
            except StopAsyncIteration:
                # Faust ends a channel's iteration so (a thrown error, get or get_nowait alike)
                # when its stream stops: what was taken is neither handled nor acked, and no
                # longer tracked, so the shutdown does not wait for it.
                for event in batch:
                    self.app.consumer.unacked.discard(event.message)
                return
            if batch:
                yield batch

    def _drain(self, batch: list[EventT[bytes]]) -> None:
        queue = self.queue
        while len(batch) < self.size and not queue.empty():
            self._keep(queue.get_nowait(), batch)

    def _keep(self, value: object, batch: list[EventT[bytes]]) -> None:
        if not isinstance(value, EventT):
            return  # only events come from a topic; anything else is nothing to handle
        app, message = self.app, value.message
        if not app.flow_control.is_active() or message.generation_id != app.consumer_generation_id:
            return  # from before a rebalance: re-read from the committed offset, never acked
        if not message.tracked and app.topics.acks_enabled_for(message.topic):
            message.tracked = True
            app.consumer.track_message(message)
        batch.append(value)

    def close(self) -> None:
        """The actor ended (its partition revoked, the worker stopping): take its channel out of
        Faust's conductor, as the stream's own iteration does when it ends — else the next
        assignment finds a channel for a partition it no longer has, and Faust crashes."""
        self.channel.on_stop_iteration()

    def ack(self, batch: Sequence[EventT[bytes]]) -> None:
        """Ack ``batch`` in its order (lowest offset first): the acked offsets stay a prefix
        of what the partition delivered, so Faust commits nothing past a record in flight."""
        on_message_out = self.app.sensors.on_message_out
        for event in batch:
            message = event.message
            if event.ack():
                on_message_out(message.tp, message.offset, message)
