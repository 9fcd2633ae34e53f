// Throwaway PKI for the TLS case, generated with openssl into a temp folder at run time (keys are
// never committed). Two CAs: one the device trusts (its caPath), one it has never seen.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface ServerCertificate {
  cert: string;
  key: string;
}

export interface AdvisorPki {
  dir: string;
  /** PEM path of the CA the device is configured to trust. */
  trustedCaPath: string;
  /** Signed by the trusted CA for `subjectName` (as CN and DNS SAN). */
  issueTrusted(subjectName: string): ServerCertificate;
  /** Signed by a CA the device does not trust. */
  issueUntrusted(subjectName: string): ServerCertificate;
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
    throw new Error(`openssl ${args[0]} failed (the TLS case needs the openssl CLI on PATH): ${stderr || (error as Error).message}`);
  }
}

function makeCa(dir: string, name: string): void {
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.pem`], dir);
}

let serial = 0;

function issue(dir: string, caName: string, subjectName: string): ServerCertificate {
  serial += 1;
  const base = `server-${serial}`;
  writeFileSync(join(dir, `${base}.ext`), `subjectAltName=DNS:${subjectName}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n`);
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${subjectName}`, '-keyout', `${base}.key`, '-out', `${base}.csr`], dir);
  openssl(['x509', '-req', '-in', `${base}.csr`, '-CA', `${caName}.pem`, '-CAkey', `${caName}.key`, '-CAcreateserial', '-days', '2', '-extfile', `${base}.ext`, '-out', `${base}.pem`], dir);
  return { cert: readFileSync(join(dir, `${base}.pem`), 'utf8'), key: readFileSync(join(dir, `${base}.key`), 'utf8') };
}

export function createPki(): AdvisorPki {
  const dir = mkdtempSync(join(tmpdir(), 'device-advisor-pki-'));
  makeCa(dir, 'trusted-ca');
  makeCa(dir, 'untrusted-ca');
  return {
    dir,
    trustedCaPath: join(dir, 'trusted-ca.pem'),
    issueTrusted: (subjectName) => issue(dir, 'trusted-ca', subjectName),
    issueUntrusted: (subjectName) => issue(dir, 'untrusted-ca', subjectName),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
