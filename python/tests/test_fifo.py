"""open_sender / open_receiver between Python processes: the safety checks and
the waiting rules (docs/PYTHON.md)."""

import os
import stat
import subprocess
import sys
import tempfile
import time
import unittest

import npipe


class Fifo(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "p")

    def tearDown(self):
        self.dir.cleanup()

    def test_sender_without_reader_times_out_and_never_hangs(self):
        start = time.monotonic()
        with self.assertRaises(npipe.TimeoutError) as caught:
            npipe.open_sender(self.path, timeout=0.2)
        self.assertEqual(caught.exception.code, "ERR_NPIPE_TIMEOUT")
        self.assertLess(time.monotonic() - start, 5)
        with self.assertRaises(npipe.TimeoutError):
            npipe.open_sender(self.path, timeout=0)

    def test_created_with_exactly_the_mode(self):
        old = os.umask(0o077)
        try:
            npipe.mkfifo_exact(self.path, 0o640)
        finally:
            os.umask(old)
        st = os.lstat(self.path)
        self.assertTrue(stat.S_ISFIFO(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o640)

    def test_not_a_fifo(self):
        open(self.path, "w").close()
        for opener in (lambda: npipe.open_receiver(self.path), lambda: npipe.open_sender(self.path, timeout=0)):
            with self.assertRaises(npipe.NotFifoError) as caught:
                opener()
            self.assertEqual(caught.exception.code, "ERR_NPIPE_NOT_FIFO")

    def test_symlink_is_not_followed(self):
        target = os.path.join(self.dir.name, "real")
        os.mkfifo(target, 0o600)
        os.symlink(target, self.path)
        with self.assertRaises(npipe.NotFifoError):
            npipe.open_receiver(self.path)

    def test_group_writable_is_unsafe_unless_allowed(self):
        os.mkfifo(self.path)
        os.chmod(self.path, 0o620)
        with self.assertRaises(npipe.UnsafeFifoError) as caught:
            npipe.open_receiver(self.path)
        self.assertEqual(caught.exception.code, "ERR_NPIPE_UNSAFE")
        npipe.open_receiver(self.path, allow_shared=True).close()

    def test_missing_without_create(self):
        with self.assertRaises(npipe.FifoNotFoundError) as caught:
            npipe.open_receiver(self.path, create=False)
        self.assertEqual(caught.exception.code, "ERR_NPIPE_NOT_FOUND")

    def test_receive_timeout(self):
        with npipe.open_receiver(self.path) as r:
            with self.assertRaises(npipe.TimeoutError):
                r.receive(timeout=0.1)

    def test_keep_open_survives_writers_coming_and_going(self):
        for fmt in ("frames", "lines", "length", "fixed:3", "raw"):
            with self.subTest(fmt=fmt):
                path = self.path + fmt.replace(":", "")
                with npipe.open_receiver(path, format=fmt) as r:
                    for word in (b"one", b"two"):
                        with npipe.open_sender(path, format=fmt, timeout=5) as s:
                            s.send(word)
                        self.assertEqual(r.receive(timeout=5), word)

    def test_without_keep_open_end_of_file_ends_iteration(self):
        code = "import npipe,sys\nwith npipe.open_sender(sys.argv[1], timeout=10) as s:\n  s.send(b'a'); s.send(b'b' * 100000)\n"
        env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(npipe.__file__)))
        with npipe.open_receiver(self.path, keep_open=False) as r:
            child = subprocess.Popen([sys.executable, "-c", code, self.path], env=env)
            got = list(r)
        self.assertEqual(child.wait(10), 0)
        self.assertEqual(got, [b"a", b"b" * 100000])

    def test_frames_writes_are_at_most_pipe_buf(self):
        os.mkfifo(self.path, 0o600)
        r = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            with npipe.open_sender(self.path, timeout=1) as s:
                writes = []
                real = os.write
                def spy(fd, data):
                    writes.append(len(data))
                    return real(fd, data)
                os.write = spy
                try:
                    s.send(b"z" * 20000)
                finally:
                    os.write = real
            self.assertTrue(writes and max(writes) <= npipe.PIPE_BUF, writes)
        finally:
            os.close(r)


if __name__ == "__main__":
    unittest.main()
