/** Socket address formatting, shared by the live decoder and sock_diag records. */
const AF_INET6 = 10;

/** AF_INET: the family of a compact transition record (tt_transition4) */
export const AF_INET = 2;

/**
 * Something that can take a decoded record's address tuple as raw numbers and
 * format it only if it is ever printed (SocketRecord): a struct tt_tuple at off,
 * or an IPv4 pair (addresses in network byte order, ports in host byte order).
 */
export interface TupleSink {
  setRawTuple(dv: DataView, off: number): void;
  setRawTuple4(dv: DataView, saddr: number, daddr: number, sport: number, dport: number): void;
}

const scratch = Buffer.alloc(16);
/** formatIp of an address kept as four big-endian 32-bit words (IPv4: the first) */
export function formatIpWords(family: number, w0: number, w1: number, w2: number, w3: number): string {
  scratch.writeInt32BE(w0, 0);
  scratch.writeInt32BE(w1, 4);
  scratch.writeInt32BE(w2, 8);
  scratch.writeInt32BE(w3, 12);
  return formatIp(family, scratch, 0);
}

export function formatIp(family: number, b: Uint8Array | Buffer, off = 0): string {
  if (family !== AF_INET6) return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
  // IPv4-mapped (::ffff:a.b.c.d) reads better in dotted form
  let mapped = b[off + 10] === 0xff && b[off + 11] === 0xff;
  for (let i = 0; i < 10 && mapped; i++) if (b[off + i] !== 0) mapped = false;
  if (mapped) return `::ffff:${b[off + 12]}.${b[off + 13]}.${b[off + 14]}.${b[off + 15]}`;
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) words.push(((b[off + i] << 8) | b[off + i + 1]).toString(16));
  // compress the longest run of zero words, as inet_ntop does
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== '0') { i++; continue; }
    let j = i;
    while (j < 8 && words[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) { best = i; bestLen = j - i; }
    i = j;
  }
  if (best < 0) return words.join(':');
  return `${words.slice(0, best).join(':')}::${words.slice(best + bestLen).join(':')}`;
}

export function endpoint(family: number, ip: string, port: number): string {
  return family === AF_INET6 ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** the port of an endpoint() string ("ip:port" / "[ip]:port"); 0 if it has none */
export function endpointPort(endpoint: string): number {
  return Number(endpoint.slice(endpoint.lastIndexOf(':') + 1)) || 0;
}
