"""npipe.serve's bookkeeping, driven without clients (the wire is tested from Node:
test/python-server.test.ts)."""

import collections
import os
import shutil
import tempfile
import unittest

from npipe.protocol import CANCEL, REPLY, REQUEST, encode_request
from npipe.server import Server, _Client


class CountingDeque(collections.deque):
    walks = 0

    def __iter__(self):
        CountingDeque.walks += 1
        return super().__iter__()


class CancelFlood(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.server = Server(os.path.join(self.dir, "server"), lambda data: data, concurrency=1)
        self.address = "/reply/c-1-0123456789abcdef.fifo"
        self.client = _Client(self.address, os.geteuid(), None)
        self.client.jobs = CountingDeque()
        self.server._clients[self.address] = self.client  # known: no reply FIFO is checked or opened

    def tearDown(self):
        self.server._shutdown()
        shutil.rmtree(self.dir)

    def send(self, kind, rid, payload=b""):
        self.server._dispatch(encode_request(kind, rid, self.address.encode(), payload))

    def test_a_cancel_of_an_id_not_waiting_does_not_walk_the_waiting_requests(self):
        # 8,000 requests wait (4 MiB at 512 bytes each), then CANCELs of ids not among them: each walked all
        # 8,000 (20,000 cancels took 3.4 s of the server's loop), a CPU amplification for anyone who may write.
        for rid in range(1, 8001):
            self.send(REQUEST, rid)
        self.assertEqual(self.server.waiting, 8000)
        CountingDeque.walks = 0
        for rid in range(100000, 101000):
            self.send(CANCEL, rid)
        self.assertEqual(CountingDeque.walks, 0)
        self.assertEqual(self.server.stats["cancelled"], 0)
        self.assertEqual(self.server.waiting, 8000)

    def test_cancels_take_waiting_requests_out_in_order_and_free_their_cost(self):
        for rid in (1, 2, 3, 2):
            self.send(REQUEST, rid, b"x" * 10)
        self.send(CANCEL, 2)  # the first request with id 2
        self.send(CANCEL, 3)
        self.assertEqual(self.server.waiting, 2)
        self.assertEqual(self.server._waiting_bytes, 2 * (10 + 512))
        self.assertEqual(self.server.stats["cancelled"], 2)
        order = []
        self.server._pool.submit = lambda fn, client, rid, *rest: order.append(rid)
        self.server._concurrency = 10
        self.server._next()
        self.assertEqual(order, [1, 2])
        self.assertEqual(self.server.waiting, 0)
        self.assertEqual(self.server._waiting_bytes, 0)
        self.server._running = 0  # nothing ran: stop() need not wait for it

    def test_a_request_reusing_the_id_of_a_running_one_takes_its_place(self):
        started = []
        self.server._pool.submit = lambda fn, client, rid, payload, max_reply, context: started.append(context)
        self.server._concurrency = 10
        self.send(REQUEST, 7, b"a")
        self.server._next()
        self.send(REQUEST, 7, b"b")
        self.server._next()
        first, second = started
        # The older one is told to stop, and the newer one is the one a CANCEL or its client's going reaches.
        self.assertTrue(first.cancelled.is_set())
        self.assertFalse(second.cancelled.is_set())
        self.assertIs(self.client.handlers[7], second)
        self.assertEqual(self.server.stats["cancelled"], 1)
        # The older one finishing leaves the newer's entry, and its answer is not sent.
        self.server._done.append((self.client, 7, 0, first, (REPLY, b"old")))
        self.server._finish_handlers()
        self.assertIs(self.client.handlers.get(7), second)
        self.assertEqual(self.server.stats["replies"], 0)
        self.send(CANCEL, 7)
        self.assertTrue(second.cancelled.is_set())
        self.assertEqual(self.server.stats["cancelled"], 2)
        self.server._running = 0  # nothing ran: stop() need not wait for it


if __name__ == "__main__":
    unittest.main()
