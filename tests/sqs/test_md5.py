"""MD5OfMessageBody and MD5OfMessageAttributes against AWS's published examples."""

from __future__ import annotations

import hashlib

from conveyor.models import MessageAttribute
from conveyor.sqs.md5 import md5_of_attributes, md5_of_body


def test_body_md5_is_md5_of_utf8() -> None:
    assert md5_of_body("hi") == "49f68a5c8493ec2c0bf489821c21fc3b"
    assert md5_of_body("héllo ✓") == hashlib.md5("héllo ✓".encode()).hexdigest()


def test_attribute_md5_vectors() -> None:
    assert md5_of_attributes({"a": MessageAttribute("String", "b")}) == \
        "bef8bf215374a0a228d67533b1a488be"
    assert md5_of_attributes({"attribName1": MessageAttribute("String", "attribValue 1")}) == \
        "19e27d4e946b072f3f58da80d94fd778"
    assert md5_of_attributes({"binaryAttribute": MessageAttribute(
        "Binary", b"Hello binary world!")}) == "31a92b15d92f8db860eda32aceb656c3"


def test_attribute_md5_sorts_by_name_and_types_numbers_as_strings() -> None:
    one = {"b": MessageAttribute("Number.int", "1"), "a": MessageAttribute("String", "x")}
    two = {"a": MessageAttribute("String", "x"), "b": MessageAttribute("Number.int", "1")}
    assert md5_of_attributes(one) == md5_of_attributes(two)
    expected = hashlib.md5(
        b"\0\0\0\x01a" b"\0\0\0\x06String" b"\x01" b"\0\0\0\x01x"
        b"\0\0\0\x01b" b"\0\0\0\x0aNumber.int" b"\x01" b"\0\0\0\x011").hexdigest()
    assert md5_of_attributes(one) == expected


def test_no_attributes_no_md5() -> None:
    assert md5_of_attributes({}) is None
