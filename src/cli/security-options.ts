import type { Command } from 'commander';

/** The link credential flags every agent-starting command takes (see src/wire/secure-link.ts). */
export function addSecurityOptions(cmd: Command, peer: 'source' | 'target'): Command {
  return cmd
    .option('--tls-ca <file>', 'TLS: CA certificate (PEM) the peer\'s certificate must chain to')
    .option('--tls-cert <file>', 'TLS: this agent\'s certificate (PEM), signed by the CA')
    .option('--tls-key <file>', 'TLS: this agent\'s private key (PEM, mode 0600)')
    .option('--tls-peer-name <name>', `TLS: name the peer's certificate must carry (CN or DNS SAN; default flimcd-${peer})`)
    .option('--psk-file <file>', 'TLS with a pre-shared key: file with IDENTITY:HEXKEY (mode 0600; `flimcd certs --psk FILE`)')
    .option('--insecure', 'plaintext, unauthenticated link: only on a network you trust');
}
