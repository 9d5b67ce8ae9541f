"""A raw UDP SIP user agent for tests that need to write SIP by hand: odd answers, forks,
registrations with headers no real peer sends."""

import hashlib
import random
import socket
import time


def md5(text):
    return hashlib.md5(text.encode()).hexdigest()


class RawUa:
    """A minimal UDP user agent on `bind`: registers as `user` with `contact` (its REGISTERs and
    responses go to `via`: SIPx, or a proxy in front), and answers INVITEs by hand. `extra`
    header lines go into every REGISTER."""

    def __init__(self, sipx_host, user, via, bind, contact, extra=""):
        self.sipx_host, self.user, self.via, self.extra = sipx_host, user, via, extra
        self.contact = contact
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(bind)
        self.sock.settimeout(0.5)
        self.cseq = 0

    def close(self):
        self.sock.close()

    def receive(self, first_line_start, timeout=15):
        """The next message whose first line starts so, as (first line, headers, body, text)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data, _ = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            text = data.decode(errors="replace")
            head, _, body = text.partition("\r\n\r\n")
            lines = head.split("\r\n")
            if not lines[0].startswith(first_line_start):
                continue
            headers = [tuple(part.strip() for part in line.split(":", 1)) for line in lines[1:] if ":" in line]
            return lines[0], headers, body, text
        raise AssertionError(f"no {first_line_start!r} within {timeout} s")

    def register(self, authorization="", supported="path"):
        self.cseq += 1
        local = self.sock.getsockname()
        branch = f"z9hG4bK{random.getrandbits(48):x}"
        msg = (f"REGISTER sip:{self.sipx_host} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch={branch};rport\r\n"
               "Max-Forwards: 70\r\n"
               f"To: <sip:{self.user}@{self.sipx_host}>\r\nFrom: <sip:{self.user}@{self.sipx_host}>;tag=gw1\r\n"
               f"Call-ID: path-reg-{self.user}\r\nCSeq: {self.cseq} REGISTER\r\n"
               f"Contact: <{self.contact}>\r\nExpires: 300\r\nSupported: {supported}\r\n"
               f"{self.extra}{authorization}Content-Length: 0\r\n\r\n")
        self.sock.sendto(msg.encode(), self.via)
        return self.receive("SIP/2.0 ")

    def register_with_digest(self, password, supported="path"):
        first, headers, _, text = self.register(supported=supported)
        assert first.startswith("SIP/2.0 401"), text
        www = next(v for k, v in headers if k.lower() == "www-authenticate")
        nonce = www.split('nonce="')[1].split('"')[0]
        realm = www.split('realm="')[1].split('"')[0]
        uri = f"sip:{self.sipx_host}"
        ha1, ha2 = md5(f"{self.user}:{realm}:{password}"), md5(f"REGISTER:{uri}")
        response = md5(f"{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}")
        auth = (f'Authorization: Digest username="{self.user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
                f'response="{response}", algorithm=MD5, qop=auth, nc=00000001, cnonce="c0ffee"\r\n')
        return self.register(auth, supported)

    def answer(self, invite_text, status, extra="", tag="gwans"):
        """A response to the request in `invite_text`, its Via, From, To (with `tag` unless it
        has one), Call-ID and CSeq copied; `extra` lines (with CRLFs) and an optional SDP body
        after them."""
        head = invite_text.split("\r\n\r\n", 1)[0].split("\r\n")[1:]
        keep = [line for line in head if line.split(":", 1)[0].strip().lower()
                in ("via", "from", "call-id", "cseq", "record-route")]
        to = next(line for line in head if line.lower().startswith("to:"))
        if ";tag=" not in to:
            to += f";tag={tag}"
        body = extra.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in extra else ""
        extra_head = extra.split("\r\n\r\n", 1)[0] + "\r\n" if extra else ""
        msg = (f"SIP/2.0 {status}\r\n" + "\r\n".join(keep + [to]) + "\r\n" + extra_head
               + f"Content-Length: {len(body)}\r\n\r\n{body}")
        self.sock.sendto(msg.encode(), self.via)
