"""SRTP for tests that play the peer by hand: AES_CM_128_HMAC_SHA1_80 (RFC 3711) keyed by SDES
(RFC 4568 `inline:` key and salt), RTP only. The caller keeps the rollover counter, so a test
can say what a peer whose sequence wrapped believes."""

import base64
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

SUITE = "AES_CM_128_HMAC_SHA1_80"
TAG_LEN = 10


def new_inline():
    """A fresh master key and salt, as written after `inline:`."""
    return base64.b64encode(os.urandom(30)).decode()


def _keystream(key, iv, n):
    encryptor = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return encryptor.update(bytes(n)) + encryptor.finalize()


class SrtpContext:
    """One direction's session keys (RFC 3711 §4.3, key derivation rate 0)."""

    def __init__(self, inline):
        master = base64.b64decode(inline + "=" * (-len(inline) % 4))
        key, salt = master[:16], int.from_bytes(master[16:30], "big")

        def derive(label, n):
            return _keystream(key, ((salt ^ (label << 48)) << 16).to_bytes(16, "big"), n)

        self.cipher_key, self.auth_key = derive(0, 16), derive(1, 20)
        self.salt = int.from_bytes(derive(2, 14), "big")

    def _crypt(self, packet, roc):
        header = 12 + 4 * (packet[0] & 0x0F)
        if packet[0] & 0x10:  # header extension
            header += 4 + 4 * struct.unpack("!H", packet[header + 2:header + 4])[0]
        seq, ssrc = struct.unpack("!H", packet[2:4])[0], struct.unpack("!I", packet[8:12])[0]
        iv = ((self.salt << 16) ^ (ssrc << 64) ^ (((roc << 16) | seq) << 16)).to_bytes(16, "big")
        body = packet[header:]
        stream = _keystream(self.cipher_key, iv, len(body))
        return packet[:header] + bytes(a ^ b for a, b in zip(body, stream))

    def _tag(self, authenticated, roc):
        return hmac.new(self.auth_key, authenticated + struct.pack("!I", roc), hashlib.sha1).digest()[:TAG_LEN]

    def protect(self, packet, roc):
        encrypted = self._crypt(packet, roc)
        return encrypted + self._tag(encrypted, roc)

    def unprotect(self, packet, roc):
        """The RTP packet, or None when the tag does not verify under `roc`."""
        body, tag = packet[:-TAG_LEN], packet[-TAG_LEN:]
        if len(packet) < 12 + TAG_LEN or not hmac.compare_digest(tag, self._tag(body, roc)):
            return None
        return self._crypt(body, roc)
