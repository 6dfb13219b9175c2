#!/usr/bin/env python3
"""Independent check of a captured digest exchange with mutual authentication.

Written from the RFCs only (standard library, hashlib): RFC 2617 section 3.2.2 (request-digest)
and 3.2.3 (rspauth, A2 = ":" digest-uri [":" H(entity-body)]), RFC 7616 section 3.4 (SHA-256,
SHA-512-256, -sess), RFC 8760 (SIP), draft-dotson-sip-mutual-auth section 6
(Proxy-Authentication-Info).

The capture holds three SIP messages, each introduced by a line
    =====vouch-capture LABEL LENGTH=====
followed by exactly LENGTH bytes and a newline: CHALLENGE (the 401/407), REQUEST (the retry
with Authorization / Proxy-Authorization) and RESPONSE (the 2xx with Authentication-Info /
Proxy-Authentication-Info).

For every credentials value in REQUEST the script checks that its nonce was challenged (in
CHALLENGE) for its realm and algorithm, that its uri is the Request-URI, recomputes the
request-digest from username and password, then finds the info value with the same cnonce and
nc in RESPONSE and recomputes its rspauth. Exit status 0 when all of it holds, 1 otherwise.

usage: rspauth_check.py CAPTURE --username U --password P
"""

import argparse
import hashlib
import re
import sys

HEADER_RE = re.compile(rb"=====vouch-capture (\w+) (\d+)=====\n")



def read_capture(path):
    data = open(path, "rb").read()
    out = {}
    pos = 0
    while pos < len(data):
        m = HEADER_RE.match(data, pos)
        if not m:
            raise ValueError("bad capture framing at byte %d" % pos)
        label = m.group(1).decode()
        length = int(m.group(2))
        start = m.end()
        out[label] = data[start : start + length]
        pos = start + length + 1
    for need in ("CHALLENGE", "REQUEST", "RESPONSE"):
        if need not in out:
            raise ValueError("capture lacks " + need)
    return out


def parse_sip(raw):
    """Start line, [(lowercase name, value)] with folded lines joined, body bytes."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError("message without an empty line")
    lines = head.decode("utf-8").split("\r\n")
    start = lines[0]
    headers = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:
            name, value = headers[-1]
            headers[-1] = (name, value + " " + line.strip())
            continue
        name, _, value = line.partition(":")
        headers.append((name.strip().lower(), value.strip()))
    return start, headers, body


def values(headers, name):
    return [v for n, v in headers if n == name.lower()]


def parse_auth_params(text):
    """'Digest a=b, c="d"' (or just the parameters) -> (scheme, {lowercase name: value})."""
    text = text.strip()
    scheme = None
    m = re.match(r"([A-Za-z][A-Za-z0-9_.!%*+`'~-]*)\s+(?=[A-Za-z0-9_.!%*+`'~-]+\s*=)", text)
    if m and m.group(1).lower() == "digest":
        scheme = m.group(1)
        text = text[m.end() :]
    params = {}
    i = 0
    n = len(text)
    while i < n:
        while i < n and text[i] in " \t,":
            i += 1
        if i >= n:
            break
        m = re.match(r"([A-Za-z0-9_.!%*+`'~-]+)\s*=\s*", text[i:])
        if not m:
            raise ValueError("bad auth-param at: " + text[i:])
        name = m.group(1).lower()
        i += m.end()
        if i < n and text[i] == '"':
            i += 1
            val = []
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                val.append(text[i])
                i += 1
            if i >= n:
                raise ValueError("unterminated quoted string")
            i += 1
            value = "".join(val)
        else:
            m = re.match(r"[^,\s]*", text[i:])
            value = m.group(0)
            i += m.end()
        if name in params:
            raise ValueError("parameter given twice: " + name)
        params[name] = value
    return scheme, params


HASHES = {
    "MD5": lambda b: hashlib.md5(b).hexdigest(),
    "SHA-256": lambda b: hashlib.sha256(b).hexdigest(),
    "SHA-512-256": lambda b: hashlib.new("sha512_256", b).hexdigest(),
}


def split_algorithm(token):
    token = token or "MD5"
    sess = token.lower().endswith("-sess")
    base = token[:-5] if sess else token
    for name in HASHES:
        if name.lower() == base.lower():
            return name, sess
    raise ValueError("unknown algorithm " + token)


def h(alg, s):
    return HASHES[alg](s if isinstance(s, bytes) else s.encode("utf-8"))


def ha1(alg, sess, username, realm, password, nonce, cnonce):
    base = h(alg, "%s:%s:%s" % (username, realm, password))
    if sess:
        return h(alg, "%s:%s:%s" % (base, nonce, cnonce))
    return base


def kd(alg, ha1_hex, nonce, nc, cnonce, qop, ha2_hex):
    if qop:
        return h(alg, ":".join([ha1_hex, nonce, nc, cnonce, qop, ha2_hex]))
    return h(alg, ":".join([ha1_hex, nonce, ha2_hex]))


def ha2(alg, method, uri, qop, body):
    if qop == "auth-int":
        return h(alg, "%s:%s:%s" % (method, uri, h(alg, body)))
    return h(alg, "%s:%s" % (method, uri))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("capture")
    ap.add_argument("--username", required=True)
    ap.add_argument("--password", required=True)
    args = ap.parse_args()

    cap = read_capture(args.capture)
    _, ch_headers, _ = parse_sip(cap["CHALLENGE"])
    req_start, req_headers, req_body = parse_sip(cap["REQUEST"])
    resp_start, resp_headers, resp_body = parse_sip(cap["RESPONSE"])
    method, request_uri, _ = req_start.split(" ", 2)
    status = int(resp_start.split(" ", 2)[1])
    if not 200 <= status < 300:
        print("FAIL: the response is a %d, not a 2xx" % status)
        return 1

    # What was challenged: (realm, nonce, algorithm) triples, by header kind.
    offered = set()
    for name in ("www-authenticate", "proxy-authenticate"):
        for v in values(ch_headers, name):
            _, p = parse_auth_params(v)
            offered.add((name, p.get("realm"), p.get("nonce"), (p.get("algorithm") or "MD5").upper()))

    failures = 0
    checked = 0
    for creds_name, chal_name, info_name in (
        ("authorization", "www-authenticate", "authentication-info"),
        ("proxy-authorization", "proxy-authenticate", "proxy-authentication-info"),
    ):
        infos = [parse_auth_params(v)[1] for v in values(resp_headers, info_name)]
        for v in values(req_headers, creds_name):
            scheme, c = parse_auth_params(v)
            realm, nonce = c.get("realm"), c.get("nonce")
            alg, sess = split_algorithm(c.get("algorithm"))
            qop, nc, cnonce = c.get("qop"), c.get("nc", ""), c.get("cnonce", "")
            label = "%s realm=%r alg=%s%s qop=%s" % (creds_name, realm, alg, "-sess" if sess else "", qop)
            if (chal_name, realm, nonce, (c.get("algorithm") or "MD5").upper()) not in offered:
                print("FAIL %s: nonce/algorithm not challenged for this realm" % label)
                failures += 1
                continue
            if c.get("uri") != request_uri:
                print("FAIL %s: digest-uri %r is not the Request-URI %r" % (label, c.get("uri"), request_uri))
                failures += 1
                continue
            a1 = ha1(alg, sess, args.username, realm, args.password, nonce, cnonce)
            expected = kd(alg, a1, nonce, nc, cnonce, qop, ha2(alg, method, c["uri"], qop, req_body))
            if expected != c.get("response", "").lower():
                print("FAIL %s: request-digest does not match the password" % label)
                failures += 1
                continue
            matching = [i for i in infos if i.get("cnonce", "") == cnonce and i.get("nc", "") == nc]
            if len(matching) != 1:
                print("FAIL %s: %d %s values with cnonce %r nc %s" % (label, len(matching), info_name, cnonce, nc))
                failures += 1
                continue
            info = matching[0]
            if info.get("qop") != qop:
                print("FAIL %s: %s qop %r differs" % (label, info_name, info.get("qop")))
                failures += 1
                continue
            # RFC 2617 section 3.2.3: A2 = ":" digest-uri (":" H(entity-body) for auth-int).
            rspauth = kd(alg, a1, nonce, nc, cnonce, qop, ha2(alg, "", c["uri"], qop, resp_body))
            if rspauth != info.get("rspauth", "").lower():
                print("FAIL %s: rspauth %s, expected %s" % (label, info.get("rspauth"), rspauth))
                failures += 1
                continue
            print("ok   %s: request-digest and rspauth verified (nextnonce %s)" % (label, info.get("nextnonce")))
            checked += 1

    if checked == 0 and failures == 0:
        print("FAIL: no credentials in the request")
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # a malformed capture is a failure, not a crash
        print("FAIL: %s: %s" % (type(e).__name__, e))
        sys.exit(1)
