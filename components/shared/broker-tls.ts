import { readFileSync } from 'node:fs';
import { errorMessage } from './logger';

/**
 * PEM files for a TLS connection to an MQTT broker: a client certificate and key (mutual TLS, as
 * AWS IoT Core requires) and the CA that signed the broker's certificate (else the system's trust
 * store). Shared by the MQTT.js clients outside the components: the local runtime's IoT bridge and
 * the cloud ingest. (The components use the SDK's MQTT 5 client, which takes the paths itself.)
 */
export interface BrokerTlsFiles {
  certPath?: string;
  keyPath?: string;
  caPath?: string;
}

export interface BrokerTlsContents {
  cert?: Buffer;
  key?: Buffer;
  ca?: Buffer;
  rejectUnauthorized?: boolean;
}

/** Reads the files; nothing to read is {}. A wrong combination or an unreadable file names itself. */
export function readBrokerTls(url: string, files: BrokerTlsFiles | undefined): BrokerTlsContents {
  if (!files || (!files.certPath && !files.keyPath && !files.caPath)) return {};
  if (!url.startsWith('mqtts://')) throw new Error(`certificate options need an mqtts:// broker URL, got "${url}"`);
  if (!files.certPath !== !files.keyPath) throw new Error('a client certificate needs both the certificate (--cert) and its private key (--key)');
  const read = (what: string, path: string | undefined) => {
    if (!path) return undefined;
    try {
      return readFileSync(path);
    } catch (error) {
      throw new Error(`${what} ${path} cannot be read: ${errorMessage(error)}`);
    }
  };
  return { cert: read('certificate', files.certPath), key: read('private key', files.keyPath), ca: read('CA bundle', files.caPath), rejectUnauthorized: true };
}
