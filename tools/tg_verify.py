#!/usr/bin/env python3
"""tg_verify.py -- check trading_guard audit proofs and digests without a database.

Python 3 standard library only; the Ed25519 signature is checked by the
`openssl` command line (OpenSSL 3: `openssl pkeyutl -verify -rawin`).

  tg_verify.py proof PROOF.json [--pubkey PEM] [--json]
  tg_verify.py digest MESSAGE_FILE SIGNATURE_BASE64_FILE PUBKEY_PEM

Exit status 0 and a line "OK: ..." only when everything holds; 1 and a line
"FAILED: <reason>" otherwise (2: bad command line).

PROOF.json is the output of `SELECT trading_guard.audit_proof(id)`:
  {"format": "trading_guard-proof-v1", "id", "batch", "position",
   "leaf_index", "leaf_count", "columns": [{"name", "type"}, ...],
   "row": hex of the canonical row bytes, "path": [hex, ...], "root": hex,
   "digest": {"message", "signature" (base64), "public_key" (PEM)}}

Canonical row: for each column of audit_log in order, a 4-byte big-endian
length (0xFFFFFFFF: NULL), then the value as stored:
  bigint, oid, xid8   big-endian integer (8, 4, 8 bytes)
  timestamptz         big-endian int64, microseconds since 2000-01-01 UTC
  text                UTF-8 bytes
  inet                family (1 byte: 2 IPv4, 3 IPv6), bits (1), address (4 or 16)
  jsonb               PostgreSQL's binary jsonb (JsonbContainer), and
  text[]              PostgreSQL's internal array (ArrayType), both without
                      the varlena header and in the server's byte order
                      (little-endian: x86-64, ARM64; this tool assumes it)
jsonb is printed exactly as PostgreSQL prints it (jsonb_out, numeric_out).

Leaf = SHA-256(0x00 || row); node = SHA-256(0x01 || left || right); the
path is an RFC 9162 section 2.1.3 inclusion proof of leaf leaf_index among
leaf_count leaves (the batch's rows in id order), folded as in 2.1.3.2.

Digest message, one line, signed (Ed25519, over exactly these bytes):
  trading_guard audit digest v1 batch=N position=P sealed_at=ISO
  key_version=V layout=HEX16 root=HEX chain=HEX
The proof's root must equal root= of its digest; position = P - leaf_count
+ 1 + leaf_index.  layout= is the first 8 bytes of SHA-256 over
"name type\n" for each column of audit_log in order: the proof's column
list must give it, so the names and types it decodes with are signed too.
"""
import argparse
import base64
import datetime
import hashlib
import json
import os
import re
import struct
import subprocess
import sys
import tempfile

FORMAT = 'trading_guard-proof-v1'
COLUMNS = [('id', 'bigint'), ('event_time', 'timestamp with time zone'),
           ('txid', 'xid8'), ('table_oid', 'oid'), ('schema_name', 'text'),
           ('table_name', 'text'), ('operation', 'text'),
           ('session_user_name', 'text'), ('current_user_name', 'text'),
           ('client_addr', 'inet'), ('application_name', 'text'),
           ('actor', 'text'), ('row_key', 'text'), ('key_hash', 'bigint'),
           ('old_key', 'text'), ('old_row', 'jsonb'), ('new_row', 'jsonb'),
           ('changed_columns', 'text[]')]
TYPE_ALIASES = {'int8': 'bigint', 'timestamptz': 'timestamp with time zone',
                '_text': 'text[]'}
MESSAGE_RE = re.compile(r'trading_guard audit digest v1 batch=(\d+) position=(\d+) '
                        r'sealed_at=(\S+) key_version=(\d+) layout=([0-9a-f]{16}) '
                        r'root=([0-9a-f]{64}) chain=([0-9a-f]{64})\Z')
PG_EPOCH = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)


class Failure(Exception):
    """A check that does not hold: the reason is printed, exit status 1."""


# ---- decoding the canonical row -------------------------------------------

def pg_json_string(s):
    """A string as PostgreSQL's escape_json writes it."""
    out = ['"']
    for ch in s:
        if ch in '"\\':
            out.append('\\' + ch)
        elif ch in '\b\f\n\r\t':
            out.append({'\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t'}[ch])
        elif ord(ch) < 0x20:
            out.append('\\u%04x' % ord(ch))
        else:
            out.append(ch)
    return ''.join(out) + '"'


def varlena(buf, pos):
    """(data, total size) of the varlena at buf[pos]: 4-byte or 1-byte header (little-endian)."""
    if buf[pos] & 1:                      # short header
        size = buf[pos] >> 1
        return buf[pos + 1:pos + size], size
    size = struct.unpack_from('<I', buf, pos)[0] >> 2
    return buf[pos + 4:pos + size], size


def numeric_text(data):
    """numeric_out of a numeric's bytes after the varlena header."""
    head = struct.unpack_from('<H', data, 0)[0]
    if head & 0xC000 == 0xC000:
        raise Failure('a jsonb number is NaN or infinite, which jsonb cannot hold')
    if head & 0xC000 == 0x8000:           # short format
        neg = bool(head & 0x2000)
        dscale = (head & 0x1F80) >> 7
        weight = (head & 0x3F) - (0x40 if head & 0x40 else 0)
        body = data[2:]
    else:
        neg = head & 0xC000 == 0x4000
        dscale = head & 0x3FFF
        weight = struct.unpack_from('<h', data, 2)[0]
        body = data[4:]
    digits = struct.unpack('<%dh' % (len(body) // 2), body)

    def group(exp):                       # base-10000 digit of weight exp
        i = weight - exp
        return digits[i] if 0 <= i < len(digits) else 0
    ip = str(group(weight)) + ''.join('%04d' % group(e) for e in range(weight - 1, -1, -1)) \
        if weight >= 0 else '0'
    frac = ''
    e = -1
    while len(frac) < dscale:
        frac += '%04d' % group(e)
        e -= 1
    return ('-' if neg else '') + ip + ('.' + frac[:dscale] if dscale else '')


def jsonb_text(buf, pos=0):
    """jsonb_out of the JsonbContainer at buf[pos]."""
    header = struct.unpack_from('<I', buf, pos)[0]
    count = header & 0x0FFFFFFF
    is_obj = bool(header & 0x20000000)
    nent = count * 2 if is_obj else count
    entries = struct.unpack_from('<%dI' % nent, buf, pos + 4)
    base = pos + 4 + 4 * nent
    items = []
    start = 0
    for je in entries:
        end = je & 0x0FFFFFFF if je & 0x80000000 else start + (je & 0x0FFFFFFF)
        kind = je & 0x70000000
        if kind == 0x00000000:
            items.append(pg_json_string(buf[base + start:base + end].decode('utf-8')))
        elif kind == 0x10000000:
            items.append(numeric_text(varlena(buf, base + ((start + 3) & ~3))[0]))
        elif kind in (0x20000000, 0x30000000):
            items.append('true' if kind == 0x30000000 else 'false')
        elif kind == 0x40000000:
            items.append('null')
        elif kind == 0x50000000:
            items.append(jsonb_text(buf, base + ((start + 3) & ~3)))
        else:
            raise Failure('unknown jsonb entry type %#x' % kind)
        start = end
    if header & 0x10000000:               # a raw scalar: an array of one
        return items[0]
    if is_obj:
        return '{' + ', '.join('%s: %s' % (items[i], items[count + i]) for i in range(count)) + '}'
    return '[' + ', '.join(items) + ']'


def text_array(buf):
    """Python list (nested for ndim > 1) of PostgreSQL's ArrayType of text."""
    ndim, dataoffset, elemtype = struct.unpack_from('<iiI', buf, 0)
    if elemtype != 25:                    # TEXTOID
        raise ValueError('an array of element type %d, not text' % elemtype)
    if ndim == 0:
        return []
    dims = struct.unpack_from('<%di' % ndim, buf, 12)
    nitems = 1
    for d in dims:
        nitems *= d
    bitmap = buf[12 + 8 * ndim:] if dataoffset else None
    # offsets count the varlena header (4 bytes) that the canonical bytes lack
    pos = (dataoffset if dataoffset else (16 + 8 * ndim + 7) & ~7) - 4
    flat = []
    for i in range(nitems):
        if bitmap is not None and not bitmap[i // 8] & (1 << (i % 8)):
            flat.append(None)
            continue
        data, size = varlena(buf, pos)
        flat.append(data.decode('utf-8'))
        pos = ((pos + size + 4 + 3) & ~3) - 4
    for d in reversed(dims[1:]):
        flat = [flat[i:i + d] for i in range(0, len(flat), d)]
    return flat


def inet_text(b):
    """inet_out of an inet_struct (family, bits, address)."""
    family, bits, addr = b[0], b[1], b[2:]
    if family == 2 and len(addr) == 4:
        s = '.'.join(str(x) for x in addr)
        return s if bits == 32 else '%s/%d' % (s, bits)
    if family != 3 or len(addr) != 16:
        raise Failure('inet value of unknown family %d' % family)
    words = struct.unpack('>8H', addr)
    best, cur = (-1, 0), (-1, 0)          # longest run of zero words (first wins)
    for i, w in enumerate(words):
        if w == 0:
            cur = (i if cur[0] < 0 else cur[0], cur[1] + 1)
            if cur[1] > best[1]:
                best = cur
        else:
            cur = (-1, 0)
    if best[1] < 2:
        best = (-1, 0)
    out, i = '', 0
    while i < 8:
        if best[0] >= 0 and best[0] <= i < best[0] + best[1]:
            if i == best[0]:
                out += ':'
            i += 1
            continue
        if i:
            out += ':'
        if i == 6 and best[0] == 0 and (best[1] == 6 or (best[1] == 5 and words[5] == 0xffff)):
            out += '.'.join(str(x) for x in addr[12:])   # IPv4-compatible or -mapped
            break
        out += '%x' % words[i]
        i += 1
    if best[0] >= 0 and best[0] + best[1] == 8:
        out += ':'
    return out if bits == 128 else '%s/%d' % (out, bits)


def timestamptz_text(us):
    """A timestamptz as to_jsonb() writes it with TimeZone = UTC."""
    if us in (-2**63, 2**63 - 1):
        return '-infinity' if us < 0 else 'infinity'
    t = PG_EPOCH + datetime.timedelta(microseconds=us)
    s = t.strftime('%Y-%m-%dT%H:%M:%S')
    if t.microsecond:
        s += ('.%06d' % t.microsecond).rstrip('0')
    return s + '+00:00'


def decode_row(row, columns):
    """[(name, type, JSON text of the value)] of a canonical row."""
    out, pos = [], 0
    for name, typ in columns:
        if pos + 4 > len(row):
            raise Failure('the row ends before column %s' % name)
        n = struct.unpack_from('>I', row, pos)[0]
        pos += 4
        if n == 0xFFFFFFFF:
            out.append((name, typ, 'null'))
            continue
        v = row[pos:pos + n]
        if len(v) != n:
            raise Failure('the row ends inside column %s' % name)
        pos += n
        fixed = {'bigint': 8, 'timestamp with time zone': 8, 'xid8': 8, 'oid': 4}
        if typ in fixed and n != fixed[typ]:
            raise Failure('column %s (%s) has %d bytes' % (name, typ, n))
        try:
            if typ == 'bigint':
                text = str(struct.unpack('>q', v)[0])
            elif typ == 'oid':
                text = '"%d"' % struct.unpack('>I', v)[0]
            elif typ == 'xid8':
                text = '"%d"' % struct.unpack('>Q', v)[0]
            elif typ == 'timestamp with time zone':
                text = '"%s"' % timestamptz_text(struct.unpack('>q', v)[0])
            elif typ == 'text':
                text = pg_json_string(v.decode('utf-8'))
            elif typ == 'inet':
                text = '"%s"' % inet_text(v)
            elif typ == 'jsonb':
                text = jsonb_text(v)
            elif typ == 'text[]':
                text = json.dumps(text_array(v), ensure_ascii=False)
            else:
                raise Failure('column %s has type %s, which this verifier cannot decode' % (name, typ))
        except (struct.error, IndexError, ValueError, OverflowError, RecursionError) as e:
            raise Failure('column %s (%s) is malformed: %s' % (name, typ, e))
        out.append((name, typ, text))
    if pos != len(row):
        raise Failure('%d bytes after the last column' % (len(row) - pos))
    return out


# ---- hashes, path, signature ----------------------------------------------

def sha256(*parts):
    return hashlib.sha256(b''.join(parts)).digest()


def fold_path(leaf, index, size, path):
    """RFC 9162 2.1.3.2: the root that leaf hash, index, tree size and path give."""
    if index >= size:
        raise Failure('leaf_index %d is not below leaf_count %d' % (index, size))
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise Failure('the path is longer than the tree is deep')
        if fn & 1 or fn == sn:
            r = sha256(b'\x01', p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = sha256(b'\x01', r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise Failure('the path is shorter than the tree is deep')
    return r


def pem_of(text):
    """A public key as PEM; also takes the bare base64 DER of a digest log line."""
    text = text.strip()
    if text.startswith('-----BEGIN'):
        return text + '\n'
    return '-----BEGIN PUBLIC KEY-----\n%s\n-----END PUBLIC KEY-----\n' % text


def check_signature(message, signature, pem):
    """True if signature (raw bytes) is pem's Ed25519 signature of message (bytes)."""
    with tempfile.TemporaryDirectory() as d:
        files = {'msg': message, 'sig': signature, 'pub.pem': pem.encode()}
        for name, data in files.items():
            with open(os.path.join(d, name), 'wb') as f:
                f.write(data)
        try:
            res = subprocess.run(['openssl', 'pkeyutl', '-verify', '-pubin', '-inkey',
                                  os.path.join(d, 'pub.pem'), '-rawin', '-in', os.path.join(d, 'msg'),
                                  '-sigfile', os.path.join(d, 'sig')], capture_output=True)
        except OSError as e:
            raise Failure('cannot run openssl: %s' % e)
        return res.returncode == 0


def parse_message(message):
    m = MESSAGE_RE.match(message)
    if not m:
        raise Failure('the digest message is not a trading_guard audit digest v1 line')
    return {'batch': int(m[1]), 'position': int(m[2]), 'sealed_at': m[3],
            'key_version': int(m[4]), 'layout': m[5], 'root': m[6], 'chain': m[7]}


def layout_of(raw_columns):
    """The layout hash of a column list as the proof gives it (types as format_type prints them)."""
    text = ''.join('%s %s\n' % (c['name'], c['type']) for c in raw_columns)
    return hashlib.sha256(text.encode('utf-8')).digest()[:8].hex()


def b64(text, what):
    try:
        return base64.b64decode(''.join(text.split()), validate=True)
    except ValueError:
        raise Failure('the %s is not base64' % what)


def hexbytes(text, what, length=None):
    try:
        b = bytes.fromhex(text)
    except (TypeError, ValueError):
        raise Failure('%s is not hex' % what)
    if length is not None and len(b) != length:
        raise Failure('%s is not %d bytes' % (what, length))
    return b


# ---- commands --------------------------------------------------------------

def cmd_proof(args):
    with open(args.proof, encoding='utf-8') as f:
        try:
            proof = json.load(f)
        except ValueError as e:
            raise Failure('%s is not JSON: %s' % (args.proof, e))
    if not isinstance(proof, dict) or proof.get('format') != FORMAT:
        raise Failure('not a %s proof' % FORMAT)
    try:
        pid, batch, position = int(proof['id']), int(proof['batch']), int(proof['position'])
        index, count = int(proof['leaf_index']), int(proof['leaf_count'])
        columns = [(c['name'], TYPE_ALIASES.get(c['type'], c['type'])) for c in proof['columns']]
        row = hexbytes(proof['row'], 'row')
        path = [hexbytes(p, 'a path element', 32) for p in proof['path']]
        root = hexbytes(proof['root'], 'root', 32)
        dg = proof['digest']
        message, signature, embedded_pem = dg['message'], dg['signature'], dg['public_key']
    except (KeyError, TypeError, ValueError) as e:
        raise Failure('the proof lacks or mangles a field: %s' % e)
    msg = parse_message(message)
    if layout_of(proof['columns']) != msg['layout']:
        raise Failure('the proof\'s columns are not the audit_log layout its digest signs '
                      '(layout=%s, the columns give %s)' % (msg['layout'], layout_of(proof['columns'])))
    if columns != COLUMNS:
        print('NOTE: audit_log has another layout than trading_guard 1.5\'s; '
              'the signed layout hash covers it', file=sys.stderr)
    decoded = decode_row(row, columns)
    values = {name: text for name, _t, text in decoded}
    if args.json:
        print('{' + ', '.join('%s: %s' % (json.dumps(n), t) for n, _ty, t in decoded) + '}')
    else:
        print('audit row (batch %d, position %d, leaf %d of %d):' % (batch, position, index, count))
        for name, typ, text in decoded:
            print('  %-17s %-9s %s' % (name, typ.replace('timestamp with time zone', 'timestamptz'),
                                       'NULL' if text == 'null' else text))
    if values.get('id') != str(pid):
        raise Failure('the row\'s id is %s, the proof is for id %d' % (values.get('id'), pid))
    if fold_path(sha256(b'\x00', row), index, count, path) != root:
        raise Failure('the row and its path do not lead to the proof\'s root')
    if msg['root'] != root.hex():
        raise Failure('the digest message names root %s, not the proof\'s root' % msg['root'])
    if msg['batch'] != batch:
        raise Failure('the digest is of batch %d, the proof of batch %d' % (msg['batch'], batch))
    if msg['position'] - count + 1 + index != position:
        raise Failure('position %d does not match the digest (position=%d, %d rows, leaf %d)'
                      % (position, msg['position'], count, index))
    sig = b64(signature, 'signature')
    keys = [(k, open(k, encoding='ascii').read()) for k in args.pubkey] if args.pubkey \
        else [('the public key in the proof', embedded_pem)]
    signer = next((name for name, k in keys if check_signature(message.encode(), sig, pem_of(k))), None)
    if signer is None:
        raise Failure('the digest\'s signature does not verify with %s'
                      % ('the trusted public key(s) given' if args.pubkey
                         else 'the public key in the proof'))
    if not args.pubkey:
        print('WARNING: the signature was checked with the public key carried by the proof '
              'itself; give --pubkey with a trusted copy to prove who signed it', file=sys.stderr)
    print('OK: audit row %d is in batch %d (position %d, leaf %d of %d), whose digest '
          '(key version %d, chain %s) is signed by %s'
          % (pid, batch, position, index, count, msg['key_version'], msg['chain'], signer),
          file=sys.stderr if args.json else sys.stdout)


def cmd_digest(args):
    with open(args.message, 'rb') as f:
        message = f.read()
    if message.endswith(b'\n'):           # a saved line: the signature is over the line alone
        message = message[:-2] if message.endswith(b'\r\n') else message[:-1]
    msg = parse_message(message.decode('utf-8', 'replace'))
    with open(args.signature, encoding='ascii') as f:
        sig = b64(f.read(), 'signature')
    with open(args.pubkey, encoding='ascii') as f:
        pem = pem_of(f.read())
    if not check_signature(message, sig, pem):
        raise Failure('the signature does not verify with %s' % args.pubkey)
    print('OK: digest of batch %d, position %d, sealed at %s, key version %d, chain %s'
          % (msg['batch'], msg['position'], msg['sealed_at'], msg['key_version'], msg['chain']))


def main(argv=None):
    ap = argparse.ArgumentParser(description='Check trading_guard audit proofs and digests offline.')
    sub = ap.add_subparsers(dest='command', required=True)
    p = sub.add_parser('proof', help='check an inclusion proof (output of audit_proof(id))')
    p.add_argument('proof')
    p.add_argument('--pubkey', action='append', metavar='PEM_FILE',
                   help='trusted public key (PEM, or the base64 of a digest log line); repeatable')
    p.add_argument('--json', action='store_true', help='print the decoded row as JSON')
    d = sub.add_parser('digest', help='check one signed digest')
    d.add_argument('message')
    d.add_argument('signature')
    d.add_argument('pubkey')
    args = ap.parse_args(argv)
    try:
        (cmd_proof if args.command == 'proof' else cmd_digest)(args)
    except Failure as e:
        print('FAILED: %s' % e, file=sys.stderr)
        return 1
    except OSError as e:
        print('FAILED: %s' % e, file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
