/**
 * The kernel settings people tune for connection exhaustion, each with one line
 * on what it does and what it does not fix. Shown with the value measured in
 * each network namespace (net.*) or system-wide (fs.*).
 */

export interface SettingInfo {
  name: string;
  scope: 'netns' | 'system';
  does: string;
  doesNotFix: string;
}

export const SETTINGS: SettingInfo[] = [
  {
    name: 'net.ipv4.tcp_fin_timeout',
    scope: 'netns',
    does: 'FIN_WAIT2 timeout of sockets the program already closed',
    doesNotFix: 'TIME_WAIT (fixed 60 s), CLOSE_WAIT (no sysctl releases it: only the program\'s close() does)',
  },
  {
    name: 'net.ipv4.tcp_keepalive_time',
    scope: 'netns',
    does: 'idle seconds before keepalive probes, on SO_KEEPALIVE sockets only',
    doesNotFix: 'fd leaks: a dead peer\'s socket keeps its fd until close()',
  },
  {
    name: 'net.ipv4.tcp_keepalive_intvl',
    scope: 'netns',
    does: 'seconds between unanswered keepalive probes',
    doesNotFix: 'CLOSE_WAIT: the peer has closed; the program must close()',
  },
  {
    name: 'net.ipv4.tcp_keepalive_probes',
    scope: 'netns',
    does: 'unanswered probes before the program gets ETIMEDOUT',
    doesNotFix: 'sockets without SO_KEEPALIVE; a program that ignores the error',
  },
  {
    name: 'net.ipv4.tcp_tw_reuse',
    scope: 'netns',
    does: 'connect() may take a TIME_WAIT port (1 all, 2 loopback only) after tcp_tw_reuse_delay; needs timestamps',
    doesNotFix: 'server-side TIME_WAIT, CLOSE_WAIT, bind() to a fixed port',
  },
  {
    name: 'net.ipv4.tcp_tw_reuse_delay',
    scope: 'netns',
    does: 'ms a TIME_WAIT socket must age before tcp_tw_reuse applies',
    doesNotFix: 'anything while tcp_tw_reuse is 0',
  },
  {
    name: 'net.ipv4.tcp_timestamps',
    scope: 'netns',
    does: 'RFC 7323 timestamps, required by tcp_tw_reuse',
    doesNotFix: 'TIME_WAIT counts',
  },
  {
    name: 'net.ipv4.tcp_max_tw_buckets',
    scope: 'netns',
    does: 'cap on TIME_WAIT sockets; beyond it TIME_WAIT is skipped (TCPTimeWaitOverflow)',
    doesNotFix: 'port exhaustion from churn: reuse connections',
  },
  {
    name: 'net.ipv4.ip_local_port_range',
    scope: 'netns',
    does: 'ports connect() picks from, for each (source, destination ip:port)',
    doesNotFix: 'a leak: more ports only delay EADDRNOTAVAIL',
  },
  {
    name: 'net.core.somaxconn',
    scope: 'netns',
    does: 'cap on every listen() backlog (accept-queue length)',
    doesNotFix: 'a program that does not accept(): the queue only fills later',
  },
  {
    name: 'net.ipv4.tcp_max_syn_backlog',
    scope: 'netns',
    does: 'cap on half-open (SYN_RECV) connections per listener',
    doesNotFix: 'a full accept queue (ListenOverflows)',
  },
  {
    name: 'fs.nr_open',
    scope: 'system',
    does: 'ceiling for RLIMIT_NOFILE (ulimit -n, LimitNOFILE=)',
    doesNotFix: 'a leak: a higher limit closes no fd, it moves the cliff',
  },
  {
    name: 'fs.file-max',
    scope: 'system',
    does: 'system-wide cap on open files (fs.file-nr)',
    doesNotFix: 'one process\'s EMFILE "Too many open files" (its RLIMIT_NOFILE)',
  },
];
