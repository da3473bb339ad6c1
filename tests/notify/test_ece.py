"""RFC 8291 encryption (`conveyor.notify.ece`): the RFC's own worked example byte for byte,
and http_ece (an independent implementation) decrypting what it makes."""

from __future__ import annotations

import base64

import http_ece  # type: ignore[import-untyped]
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from conveyor.demo.loopback import make_subscriber
from conveyor.notify.ece import RECORD_SIZE, encrypt
from conveyor.notify.jwt import b64url_decode


def test_rfc_8291_appendix_a_byte_for_byte() -> None:
    as_private = b64url_decode("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw")
    key = ec.derive_private_key(int.from_bytes(as_private, "big"), ec.SECP256R1())
    body = encrypt(
        b64url_decode("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7V"
                      "d8pZGH6SRpkNtoIAiw4"),
        b64url_decode("BTBZMqHH6r4Tts7J_aSIgg"),
        b"When I grow up, I want to be a watermelon",
        private_key=key, salt=b64url_decode("DGv6ra1nlYgDCS1FRnbzlw"))
    assert base64.urlsafe_b64encode(body).decode().rstrip("=") == (
        "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLo"
        "cInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouB"
        "WLVWGNWQexSgSxsj_Qulcy4a-fN")


@pytest.mark.parametrize("size", [0, 1, 100, RECORD_SIZE - 103])
def test_http_ece_decrypts_it_and_every_message_has_its_own_key_and_salt(size: int) -> None:
    sub = make_subscriber()
    ua_public = b64url_decode(sub.p256dh)
    plain = bytes(range(256)) * (size // 256) + bytes(size % 256)
    first, second = (encrypt(ua_public, sub.auth, plain) for _ in range(2))
    assert first[:16] != second[:16] and first[21:86] != second[21:86]  # salt, sender key
    for body in (first, second):
        assert len(body) == 86 + size + 17 <= 4096  # what a push service must take
        assert http_ece.decrypt(body, private_key=sub.private_key, auth_secret=sub.auth,
                                version="aes128gcm") == plain


def test_a_record_too_large_or_a_key_not_on_the_curve_is_refused() -> None:
    sub = make_subscriber()
    with pytest.raises(ValueError, match="at most 4079 bytes"):
        encrypt(b64url_decode(sub.p256dh), sub.auth, bytes(RECORD_SIZE - 16))
    with pytest.raises(ValueError):
        encrypt(b"\x04" + bytes(64), sub.auth, b"x")
