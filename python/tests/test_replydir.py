"""The reply-address rules a Python server applies before it writes a byte
(docs/RPC.md, "Security"), as the Node server's checkReplyPath."""

import os
import tempfile
import unittest

from npipe.errors import InvalidArgumentError, NpipeError, UnsafeFifoError
from npipe.replydir import check_reply_path, ensure_reply_directory

NAME = "c-%d-%s.fifo" % (os.getpid(), "0123456789abcdef")


class CheckReplyPath(unittest.TestCase):
    def test_a_reply_fifo_in_the_reply_folder_is_accepted_with_its_owner(self):
        d = ensure_reply_directory()
        self.assertEqual(check_reply_path(os.path.join(d, NAME)), os.geteuid())

    def test_relative_unnormalized_and_double_slash_paths_are_invalid(self):
        d = ensure_reply_directory()
        for path in (NAME, d + "/../" + os.path.basename(d) + "/" + NAME, d + "/./" + NAME, "/" + d + "/" + NAME, "",
                     d + "\0/" + NAME, d + "/" + NAME + "\0"):
            with self.assertRaises(InvalidArgumentError, msg=path):
                check_reply_path(path)

    def test_other_names_and_other_folders_are_refused(self):
        d = ensure_reply_directory()
        with tempfile.TemporaryDirectory() as elsewhere:
            os.chmod(elsewhere, 0o700)
            for path in (os.path.join(d, "passwd"), os.path.join(d, "c-1-XYZ.fifo"), os.path.join(elsewhere, NAME), "/etc/" + NAME):
                with self.assertRaises(UnsafeFifoError, msg=path):
                    check_reply_path(path)

    def test_a_folder_open_to_others_is_refused(self):
        d = ensure_reply_directory()
        mode = os.stat(d).st_mode & 0o777
        os.chmod(d, 0o755)
        try:
            with self.assertRaises(NpipeError):
                check_reply_path(os.path.join(d, NAME))
        finally:
            os.chmod(d, mode)


if __name__ == "__main__":
    unittest.main()
