/**
 * The demo's leaky server: an HTTP-ish TCP service with one handler that
 * forgets to end its socket. allowHalfOpen keeps a socket open after the
 * peer's FIN, so every request to /leak leaves a CLOSE_WAIT socket behind,
 * exactly the production bug tcptrace exists to find.
 */
import net from 'node:net';

const kept: net.Socket[] = [];

function handleQuote(sock: net.Socket): void {
  sock.write('HTTP/1.0 200 OK\r\n\r\nquote\n');
  kept.push(sock); // BUG: no sock.end(): the peer closes, we never do
}

function handleHealth(sock: net.Socket): void {
  sock.end('HTTP/1.0 200 OK\r\n\r\nok\n');
}

const server = net.createServer({ allowHalfOpen: true }, (sock) => {
  sock.on('error', () => {});
  sock.once('data', (d) => (d.toString().startsWith('GET /quote') ? handleQuote(sock) : handleHealth(sock)));
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`PORT ${(server.address() as net.AddressInfo).port}\n`);
});
