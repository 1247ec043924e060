#!/usr/bin/env python3
"""The native mailslot C API from Python, with nothing but ctypes.

Run:  LD_LIBRARY_PATH=PREFIX/lib python3 mailslot_ctypes.py
(or MAILSLOT_LIB=/path/to/libmailslot.so.0). It creates a slot, writes to
it, reads the messages back with their sender, and shows how errors look.
"""
import ctypes
import os
import sys

lib = ctypes.CDLL(os.environ.get("MAILSLOT_LIB", "libmailslot.so.0"))

MAILSLOT_OK = 0
MAILSLOT_E_BUFFER_TOO_SMALL = 8
MAILSLOT_E_TIMED_OUT = 9
MAILSLOT_WAIT_FOREVER = 0xFFFFFFFF
MAILSLOT_NO_MESSAGE = 0xFFFFFFFF


class Sender(ctypes.Structure):
    _fields_ = [
        ("pid", ctypes.c_uint32),
        ("uid", ctypes.c_uint32),
        ("gid", ctypes.c_uint32),
        ("is_remote", ctypes.c_bool),
        ("remote_ip", ctypes.c_uint8 * 4),
        ("remote_port", ctypes.c_uint16),
        ("source_name", ctypes.c_char * 256),
        ("dest_name", ctypes.c_char * 256),
    ]


class Info(ctypes.Structure):
    _fields_ = [
        ("max_message_size", ctypes.c_uint32),
        ("next_size", ctypes.c_uint32),
        ("count", ctypes.c_uint32),
        ("read_timeout_ms", ctypes.c_uint32),
    ]


status = ctypes.c_int
handle = ctypes.c_void_p
lib.mailslot_reader_create.argtypes = [ctypes.c_char_p, ctypes.c_uint32, ctypes.c_uint32,
                                       ctypes.c_uint32, ctypes.c_uint32, ctypes.POINTER(handle)]
lib.mailslot_reader_create.restype = status
lib.mailslot_reader_read_timeout.argtypes = [handle, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint32,
                                             ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(Sender)]
lib.mailslot_reader_read_timeout.restype = status
lib.mailslot_reader_info.argtypes = [handle, ctypes.POINTER(Info)]
lib.mailslot_reader_info.restype = status
lib.mailslot_reader_close.argtypes = [handle]
lib.mailslot_reader_close.restype = None
lib.mailslot_writer_open.argtypes = [ctypes.c_char_p, ctypes.POINTER(handle)]
lib.mailslot_writer_open.restype = status
lib.mailslot_writer_write.argtypes = [handle, ctypes.c_void_p, ctypes.c_size_t]
lib.mailslot_writer_write.restype = status
lib.mailslot_writer_close.argtypes = [handle]
lib.mailslot_writer_close.restype = None
lib.mailslot_last_error_message.argtypes = []
lib.mailslot_last_error_message.restype = ctypes.c_char_p
lib.mailslot_strerror.argtypes = [ctypes.c_int]
lib.mailslot_strerror.restype = ctypes.c_char_p
lib.mailslot_version.argtypes = []
lib.mailslot_version.restype = ctypes.c_char_p


class MailslotError(Exception):
    def __init__(self, code):
        # The detail is per thread: read it right after the failing call.
        detail = lib.mailslot_last_error_message().decode("utf-8", "replace")
        super().__init__(f"{lib.mailslot_strerror(code).decode()}: {detail}")
        self.code = code


def check(code):
    if code != MAILSLOT_OK:
        raise MailslotError(code)


class Reader:
    """A slot of our own; the name lives until close()."""

    def __init__(self, name, max_message_size=0, timeout_ms=MAILSLOT_WAIT_FOREVER, mode=0o600):
        self._h = handle()
        check(lib.mailslot_reader_create(name.encode(), max_message_size, timeout_ms, mode, 0,
                                         ctypes.byref(self._h)))
        self._buf = ctypes.create_string_buffer(256)

    def read(self, timeout_ms=MAILSLOT_WAIT_FOREVER):
        """One whole message and its sender; grows the buffer as needed."""
        n, sender = ctypes.c_size_t(), Sender()
        while True:
            code = lib.mailslot_reader_read_timeout(self._h, self._buf, len(self._buf), timeout_ms,
                                                    ctypes.byref(n), ctypes.byref(sender))
            if code != MAILSLOT_E_BUFFER_TOO_SMALL:
                break
            self._buf = ctypes.create_string_buffer(n.value)  # the message waited for us
        check(code)
        return self._buf.raw[:n.value], sender

    def info(self):
        i = Info()
        check(lib.mailslot_reader_info(self._h, ctypes.byref(i)))
        return i

    def close(self):
        lib.mailslot_reader_close(self._h)
        self._h = handle()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Writer:
    def __init__(self, name):
        self._h = handle()
        check(lib.mailslot_writer_open(name.encode(), ctypes.byref(self._h)))

    def write(self, data: bytes):
        check(lib.mailslot_writer_write(self._h, data, len(data)))

    def close(self):
        lib.mailslot_writer_close(self._h)
        self._h = handle()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def main():
    name = r"\\.\mailslot\python\demo"
    print("libmailslot", lib.mailslot_version().decode())
    with Reader(name) as reader, Writer(name.upper()) as writer:
        big = b"x" * 1000
        for m in (b"hello from Python", b"", big):
            writer.write(m)
        info = reader.info()
        print(f"{info.count} messages waiting, the next has {info.next_size} bytes")
        assert (info.count, info.next_size) == (3, 17)

        data, sender = reader.read()
        print(f"read {data!r} from pid {sender.pid} (uid {sender.uid})")
        assert data == b"hello from Python" and sender.pid == os.getpid()
        assert reader.read()[0] == b""
        assert reader.read()[0] == big  # larger than the first buffer: grown and read again
        assert reader.info().next_size == MAILSLOT_NO_MESSAGE

        try:
            reader.read(timeout_ms=0)
            raise AssertionError("an empty slot read with timeout 0 must time out")
        except MailslotError as e:
            assert e.code == MAILSLOT_E_TIMED_OUT
            print("as expected:", e)
    try:
        Writer(name)
        raise AssertionError("the slot is closed; opening it must fail")
    except MailslotError as e:
        print("as expected:", e)
    print("python ctypes example: ok")


if __name__ == "__main__":
    sys.exit(main())
