/**
 * Certificates for test servers: a throwaway certificate authority that issues serving and client
 * certificates (RSA 2048, SHA-256, PEM). Keys come from node:crypto (native, fast); node-forge
 * builds and signs the X.509 certificates, which node:crypto cannot. No openssl needed.
 * Kubernetes reads a client certificate's CN as the user name and its O entries as groups.
 */
import { generateKeyPair, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import forge from 'node-forge';

const generateRsa = promisify(generateKeyPair);
const DAY_MS = 24 * 60 * 60 * 1000;

/** A certificate and its private key, both PEM. */
export interface KeyPair {
  readonly cert: string;
  readonly key: string;
}

/** What a certificate is for. */
export interface IssueOptions {
  /** The subject's CN (for Kubernetes: the user name). */
  commonName: string;
  /** The subject's O entries (for Kubernetes: the user's groups). */
  organizations?: readonly string[];
  /** Makes a serving certificate for these names and addresses. */
  server?: { dnsNames?: readonly string[]; ipAddresses?: readonly string[] };
  /** Makes a client certificate (default: true unless `server` is given). */
  client?: boolean;
  /** Validity in days (default 7). */
  days?: number;
}

/** A certificate authority that signs certificates with {@link CertificateAuthority.issue}. */
export interface CertificateAuthority extends KeyPair {
  issue(options: IssueOptions): Promise<KeyPair>;
}

/** A new RSA 2048 key pair as PEM (PKCS#8 private key, SPKI public key), e.g. for signing service-account tokens. */
export async function createSigningKey(): Promise<{ privateKey: string; publicKey: string }> {
  return generateRsa('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
}

function checkCommonName(value: unknown): asserts value is string {
  if (typeof value !== 'string' || value === '') {
    throw new TypeError(`commonName: must be a non-empty string, got ${JSON.stringify(value)}`);
  }
}

function blankCertificate(publicKeyPem: string, days: number): forge.pki.Certificate {
  if (!Number.isInteger(days) || days < 1) throw new TypeError(`days: must be an integer ≥ 1, got ${String(days)}`);
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKeyPem);
  const serial = randomBytes(16);
  serial[0]! &= 0x7f; // a positive serial number
  cert.serialNumber = serial.toString('hex');
  // Backdated an hour so a clock step between processes cannot make it "not yet valid".
  const now = Date.now();
  cert.validity.notBefore = new Date(now - 60 * 60 * 1000);
  cert.validity.notAfter = new Date(now + days * DAY_MS);
  return cert;
}

// forge takes attributes as values, so a name like `system:masters` or one with a comma cannot
// change the subject's structure.
function subject(commonName: string, organizations: readonly string[] = []): forge.pki.CertificateField[] {
  return [{ name: 'commonName', value: commonName }, ...organizations.map((value) => ({ name: 'organizationName', value }))];
}

/**
 * Creates a certificate authority (self-signed, valid for `days`, default 7).
 * @example
 * const ca = await createCertificateAuthority('shardline-test-ca');
 * const admin = await ca.issue({ commonName: 'admin', organizations: ['system:masters'] });
 */
export async function createCertificateAuthority(commonName: string, days = 7): Promise<CertificateAuthority> {
  checkCommonName(commonName);
  const keys = await createSigningKey();
  const signingKey = forge.pki.privateKeyFromPem(keys.privateKey);
  const caCert = blankCertificate(keys.publicKey, days);
  caCert.setSubject(subject(commonName));
  caCert.setIssuer(subject(commonName));
  caCert.setExtensions([
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  caCert.sign(signingKey, forge.md.sha256.create());

  async function issue(options: IssueOptions): Promise<KeyPair> {
    checkCommonName(options?.commonName);
    const subjectKeys = await createSigningKey();
    const cert = blankCertificate(subjectKeys.publicKey, options.days ?? 7);
    cert.setSubject(subject(options.commonName, options.organizations));
    cert.setIssuer(caCert.subject.attributes);
    const extensions: object[] = [
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: options.server !== undefined, clientAuth: options.client ?? options.server === undefined },
      { name: 'authorityKeyIdentifier', keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
    ];
    if (options.server !== undefined) {
      const altNames = [
        ...(options.server.dnsNames ?? []).map((value) => ({ type: 2, value })),
        ...(options.server.ipAddresses ?? []).map((ip) => ({ type: 7, ip })),
      ];
      if (altNames.length === 0) throw new TypeError('server: give at least one DNS name or IP address');
      extensions.push({ name: 'subjectAltName', altNames });
    }
    cert.setExtensions(extensions);
    cert.sign(signingKey, forge.md.sha256.create());
    return { cert: forge.pki.certificateToPem(cert), key: subjectKeys.privateKey };
  }

  return { cert: forge.pki.certificateToPem(caCert), key: keys.privateKey, issue };
}
