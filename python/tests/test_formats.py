"""The formats against docs/PROTOCOL.md's test vectors and docs/FORMATS.md's examples.

The vectors are parsed from the ```vector blocks of docs/PROTOCOL.md (found from
this file, or at $NPIPE_PROTOCOL_MD), so the page and this code cannot drift apart.
"""

import json
import os
import unittest

from npipe import formats
from npipe.errors import BadFrameError, FrameTooLargeError

HERE = os.path.dirname(os.path.abspath(__file__))
PROTOCOL_MD = os.environ.get("NPIPE_PROTOCOL_MD", os.path.join(HERE, "..", "..", "docs", "PROTOCOL.md"))


def vectors():
    with open(PROTOCOL_MD, encoding="utf-8") as f:
        text = f.read()
    blocks = text.split("```vector\n")[1:]
    out = []
    for block in blocks:
        body = block.split("```", 1)[0]
        fields, packets = {}, []
        for line in body.strip().splitlines():
            key, sep, value = line.partition(": ")
            if sep and key in ("message", "writer", "pid", "packet-size"):
                fields[key] = value
            else:
                packets.append(bytes.fromhex(line))
        out.append((
            json.loads(fields["message"]).encode("utf-8"),
            int(fields["writer"], 0),
            int(fields["pid"], 0),
            int(fields["packet-size"], 0),
            packets,
        ))
    return out


class ProtocolVectors(unittest.TestCase):
    def test_there_are_vectors(self):
        self.assertGreaterEqual(len(vectors()), 3)

    def test_encode_gives_the_packets(self):
        for message, writer, pid, size, packets in vectors():
            with self.subTest(message=message, size=size):
                self.assertEqual(formats.encode_frames(message, writer, pid, size), packets)

    def test_decode_gives_the_message_however_the_bytes_are_split(self):
        for message, writer, pid, size, packets in vectors():
            stream = b"".join(packets)
            for step in (1, 3, 7, len(stream) or 1):
                with self.subTest(message=message, step=step):
                    dec = formats.FramesDecoder()
                    got = []
                    for i in range(0, len(stream), step):
                        got += dec.feed(stream[i:i + step])
                    got += dec.end()
                    self.assertEqual(got, [message])
                    self.assertEqual(dec.dropped["messages"], 0)


def feed_all(dec, *chunks):
    got = []
    for c in chunks:
        got += dec.feed(c)
    return got


class ReaderRules(unittest.TestCase):
    def packets(self, message, writer, size=32):
        return formats.encode_frames(message, writer, 1, size)

    def test_interleaved_writers_each_whole_in_order(self):
        a = self.packets(b"A" * 60, 1)
        b = self.packets(b"B" * 50, 2)
        dec = formats.FramesDecoder()
        got = feed_all(dec, a[0], b[0], a[1], b[1], a[2], b[2])
        self.assertEqual(sorted(got), [b"A" * 60, b"B" * 50])

    def test_abandoned_then_next_message_delivered(self):
        a = self.packets(b"x" * 60, 7)
        dec = formats.FramesDecoder()
        got = feed_all(dec, a[0], a[1], *self.packets(b"y", 7))
        self.assertEqual(got, [b"y"])
        self.assertEqual(dec.reasons, {"abandoned": 1})

    def test_stalled_after_timeout_of_reading_and_a_packet_restarts_the_clock(self):
        a = self.packets(b"x" * 60, 7)
        b = self.packets(b"z" * 60, 8)
        dec = formats.FramesDecoder()
        feed_all(dec, a[0], b[0])
        dec.age(0.6, 1.0)
        feed_all(dec, a[1])  # writer 7 moved on: its clock starts again
        dec.age(0.6, 1.0)
        self.assertEqual(dec.reasons, {"stalled": 1})
        self.assertEqual(list(dec.in_progress()), [7])
        self.assertEqual(feed_all(dec, a[2]), [b"x" * 60])

    def test_orphan_middle_and_last_skipped(self):
        a = self.packets(b"x" * 60, 7)
        dec = formats.FramesDecoder()
        got = feed_all(dec, a[1], a[2], *self.packets(b"ok", 7))
        self.assertEqual(got, [b"ok"])
        self.assertEqual(dec.reasons, {"orphan": 1})

    def test_too_large_dropped_before_allocating(self):
        dec = formats.FramesDecoder(max_message_size=40)
        a = self.packets(b"x" * 60, 7)
        got = feed_all(dec, *a, *self.packets(b"ok", 7))
        self.assertEqual(got, [b"ok"])
        self.assertEqual(dec.reasons, {"too-large": 1})
        # A forged first packet claiming 4 GiB allocates nothing.
        forged = bytes.fromhex("fe 01 0000 00000009 ffffffff 00000001")
        dec = formats.FramesDecoder()
        self.assertEqual(dec.feed(forged), [])
        self.assertEqual(dec.reasons, {"too-large": 1})

    def test_memory_bound(self):
        dec = formats.FramesDecoder(max_message_size=100, max_partial_bytes=100)
        a = self.packets(b"a" * 60, 1)
        b = self.packets(b"b" * 60, 2)
        got = feed_all(dec, a[0], b[0], *a[1:], *b[1:])
        self.assertEqual(got, [b"a" * 60])
        self.assertEqual(dec.reasons, {"memory": 1})

    def test_writers_remembered_are_bounded_in_number(self):
        # Middle packets of 100,000 writer ids never seen (8 bytes each, no first packet): each was remembered
        # as a writer to skip, for ever (until that id's last packet), with no bound: memory grew without end.
        import struct
        dec = formats.FramesDecoder()
        orphans = b"".join(struct.pack("!BBHI", 0xFE, 0, 0, w) for w in range(1, 100001))
        self.assertEqual(dec.feed(orphans), [])
        self.assertLessEqual(len(dec.partials) + len(getattr(dec, "skipping", {})), 4096)
        # First packets of 0-byte messages (no last packet): 0 bytes each against max_partial_bytes, so no bound.
        dec = formats.FramesDecoder()
        firsts = b"".join(struct.pack("!BBHIII", 0xFE, 1, 0, w, 0, 0) for w in range(1, 100001))
        self.assertEqual(dec.feed(firsts), [])
        self.assertLessEqual(len(dec.partials), 65536)
        self.assertEqual(dec.reasons, {"memory": 100000 - 65536})
        # A writer id kept goes on as before: its message completes.
        self.assertEqual(dec.feed(struct.pack("!BBHI", 0xFE, 2, 0, 1)), [b""])

    def test_corrupt_short_last(self):
        dec = formats.FramesDecoder()
        a = self.packets(b"x" * 60, 7)
        short_last = a[2][:2] + b"\x00\x01" + a[2][4:8] + a[2][8:9]
        got = feed_all(dec, a[0], a[1], short_last)
        self.assertEqual(got, [])
        self.assertEqual(dec.reasons, {"corrupt": 1})

    def test_bad_magic_and_reserved_bits_are_bad_frame(self):
        for bad in (b"hello wo", bytes.fromhex("fe07000001020304")):
            with self.subTest(bad=bad):
                with self.assertRaises(BadFrameError) as caught:
                    formats.FramesDecoder().feed(bad)
                self.assertEqual(caught.exception.code, "ERR_NPIPE_BAD_FRAME")

    def test_end_of_file_drops_messages_in_progress(self):
        dec = formats.FramesDecoder()
        a = self.packets(b"x" * 60, 7)
        self.assertEqual(feed_all(dec, a[0]), [])
        self.assertEqual(dec.end(), [])
        self.assertEqual(dec.reasons, {"writer-died": 1})


class OtherFormats(unittest.TestCase):
    def test_docs_examples(self):
        self.assertEqual(formats.encode_lines(b"hello"), bytes.fromhex("68656c6c6f0a"))
        self.assertEqual(formats.encode_lines(b""), b"\n")
        self.assertEqual(formats.encode_length(b"hello"), bytes.fromhex("0000000568656c6c6f"))
        self.assertEqual(formats.encode_length(b""), bytes.fromhex("00000000"))
        with self.assertRaises(BadFrameError):
            formats.encode_lines(b"a\nb")
        with self.assertRaises(BadFrameError):
            formats.encode_fixed(b"abc", 4)

    def test_length_matches_multiprocessing_connection(self):
        import multiprocessing.connection as mc
        r, w = os.pipe()
        conn = mc.Connection(w, readable=False)
        conn.send_bytes(b"hello")
        conn.close()
        self.assertEqual(os.read(r, 100), formats.encode_length(b"hello"))
        os.close(r)

    def test_decoders_round_trip_split_anywhere(self):
        messages = [b"", b"a", b"hello world", bytes(range(10)) * 30]
        for fmt in ("lines", "length", "frames"):
            enc = formats.encoder(fmt, writer_id=5)
            ms = [m for m in messages if not (fmt == "lines" and b"\n" in m)]
            stream = b"".join(b"".join(enc(m)) for m in ms)
            for step in (1, 5, len(stream)):
                with self.subTest(fmt=fmt, step=step):
                    dec = formats.decoder(fmt)
                    got = []
                    for i in range(0, len(stream), step):
                        got += dec.feed(stream[i:i + step])
                    got += dec.end()
                    self.assertEqual(got, ms)

    def test_lines_end_of_file_gives_the_unterminated_last_line(self):
        dec = formats.decoder("lines")
        self.assertEqual(dec.feed(b"a\nHello from pid [1]"), [b"a"])
        self.assertEqual(dec.end(), [b"Hello from pid [1]"])

    def test_fixed_and_length_short_at_end_are_bad_frame(self):
        dec = formats.decoder("fixed:4")
        self.assertEqual(dec.feed(b"abcdef"), [b"abcd"])
        with self.assertRaises(BadFrameError):
            dec.end()
        dec = formats.decoder("length")
        dec.feed(b"\x00\x00\x00\x05ab")
        with self.assertRaises(BadFrameError):
            dec.end()

    def test_sizes_checked_before_allocating(self):
        dec = formats.decoder("length", max_message_size=10)
        with self.assertRaises(FrameTooLargeError) as caught:
            dec.feed(b"\x7f\xff\xff\xff")
        self.assertEqual(caught.exception.code, "ERR_NPIPE_FRAME_TOO_LARGE")
        with self.assertRaises(BadFrameError):
            formats.decoder("length").feed(b"\xff\xff\xff\xfe")
        with self.assertRaises(FrameTooLargeError):
            formats.decoder("lines", max_message_size=3).feed(b"abcdef")
        with self.assertRaises(FrameTooLargeError):
            formats.encoder("frames", writer_id=1, max_message_size=3)(b"abcd")


if __name__ == "__main__":
    unittest.main()
