import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { IdParams, errorResponses } from '../http/schemas.js';
import type { HostConnections } from './host-connection.service.js';

const PublicKey = Type.Object({
  algorithm: Type.String({ description: 'ssh-ed25519 or ssh-rsa' }),
  fingerprint: Type.String({ description: 'SHA256:… as ssh-keygen -lf prints it' }),
  authorizedKeysLine: Type.String({ description: 'one line of ~/.ssh/authorized_keys' }),
});
const PublicKeys = Type.Object({
  keys: Type.Array(PublicKey, { description: 'ed25519 first, RSA 4096 for older hosts' }),
  authorizedKeys: Type.String({ description: 'all lines, newline-terminated' }),
  installCommand: Type.String({ description: 'run once on each host as the SSH user Backroll uses; idempotent' }),
});
const TrustBody = Type.Object(
  { fingerprint: Type.String({ minLength: 1, maxLength: 128, description: 'SHA256:… of the key the host presents now, as checked on the host' }) },
  { additionalProperties: false },
);

const FAILURES =
  'Failures are recorded on the host and returned as problems: 409 HOST.AUTH_FAILED (with publicKeys and installCommand) and ' +
  'HOST.KEY_CHANGED (with pinnedFingerprint and presentedFingerprint) need an administrator; 503 HOST.UNREACHABLE, HOST.TIMEOUT, ' +
  'HOST.LIBVIRT_DOWN, HOST.CONNECTION_LOST, HOST.SSH_FAILED are the host not answering properly.';

export async function hostConnectionRoutes(app: FastifyInstance, connections: HostConnections): Promise<void> {
  const Host = Type.Ref('Host');
  app.get(
    '/ssh/public-keys',
    {
      schema: {
        tags: ['hosts'],
        summary: "Backroll's SSH public keys, and the command that authorises them on a host",
        response: { 200: PublicKeys, ...errorResponses() },
      },
    },
    async () => connections.publicKeys(),
  );
  app.post<{ Params: IdParams }>(
    '/hosts/:id/connect',
    {
      schema: {
        tags: ['hosts'],
        summary: 'Connect to the host now: SSH (its key pinned on first use) and libvirt at its URI',
        description: FAILURES,
        params: IdParams,
        response: { 200: Host, ...errorResponses(404, 409, 503) },
      },
    },
    async (req) => connections.connect(req.params.id),
  );
  app.post<{ Params: IdParams; Body: Static<typeof TrustBody> }>(
    '/hosts/:id/trust-host-key',
    {
      schema: {
        tags: ['hosts'],
        summary: 'Pin the SSH host key the host presents now, after checking it on the host; then connect',
        description:
          'The fingerprint must be the one of the key the host presents at this moment (409 HOST.FINGERPRINT_MISMATCH otherwise, and nothing changes). ' +
          FAILURES,
        params: IdParams,
        body: TrustBody,
        response: { 200: Host, ...errorResponses(404, 409, 503) },
      },
    },
    async (req) => connections.trustHostKey(req.params.id, req.body.fingerprint),
  );
}
