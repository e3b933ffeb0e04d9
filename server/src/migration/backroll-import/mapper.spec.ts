import { describe, expect, it } from 'vitest';
import { mapBackroll, type CreateRequest, type MapOptions } from './mapper.js';
import type { BackrollSource, SourceHost, SourcePolicy } from './source.js';

const NOW = new Date('2026-01-01T00:00:00Z');
const OPTS: MapOptions = { timezone: 'Europe/Paris', keepEnabled: false, now: NOW };
const SLACK = 'https://hooks.slack.com/services/T1/B2/verysecrettoken';
const API_KEY = 'apikey-0123456789';
const SECRET_KEY = 'secretkey-9876543210';

const id = (n: number) => n.toString(16).padStart(32, '0');
const policy = (over: Partial<SourcePolicy>): SourcePolicy => ({
  id: id(20),
  name: 'nightly',
  description: 'desc',
  schedule: '0 2 * * *',
  retention: { day: 7, week: 4, month: 0, year: 0 },
  storageId: id(1),
  hookId: null,
  enabled: true,
  ...over,
});
const host = (over: Partial<SourceHost>): SourceHost => ({ id: id(40), hostname: 'kvm1', ipaddress: '10.0.0.1', username: 'root', ssh: true, poolId: id(30), tags: null, ...over });

function source(over: Partial<BackrollSource> = {}): BackrollSource {
  return {
    dialect: 'sqlite',
    location: 'sqlite:/x',
    schemaNotes: [],
    storages: [{ id: id(1), name: 'nfs', path: '/srv/backup' }],
    hooks: [{ id: id(10), name: 'slack', value: SLACK, provider: null }],
    connectors: [{ id: id(15), name: 'cs', url: 'https://cloud.example/client/api', login: API_KEY, password: SECRET_KEY }],
    policies: [policy({ hookId: id(10) })],
    pools: [{ id: id(30), name: 'rack-a', policyId: id(20), connectorId: id(15) }],
    hosts: [host({})],
    userCount: 0,
    ...over,
  };
}

const creates = (plan: ReturnType<typeof mapBackroll>, kind: CreateRequest['kind']) => plan.resources.filter((r) => r.create.kind === kind).map((r) => r.create);

describe('mapBackroll', () => {
  it('maps every resource with its references by name, in creation order', () => {
    const plan = mapBackroll(source(), OPTS);
    expect(plan.resources.map((r) => `${r.item.kind}:${r.item.name}`)).toEqual(['storage:nfs', 'hook:slack', 'connector:cs', 'policy:nightly', 'pool:rack-a', 'host:kvm1']);
    expect(creates(plan, 'storage')).toEqual([{ kind: 'storage', request: { name: 'nfs', path: '/srv/backup' } }]);
    expect(creates(plan, 'hook')).toEqual([
      { kind: 'hook', request: { name: 'slack', kind: 'slack', url: SLACK, events: ['backup.succeeded', 'backup.failed', 'restore.succeeded', 'restore.failed'] } },
    ]);
    expect(creates(plan, 'connector')).toEqual([
      { kind: 'connector', request: { name: 'cs', kind: 'cloudstack', endpointUrl: 'https://cloud.example/client/api', apiKey: API_KEY, secretKey: SECRET_KEY, verifyTls: true } },
    ]);
    expect(creates(plan, 'policy')).toEqual([
      {
        kind: 'policy',
        storage: 'nfs',
        hook: 'slack',
        request: {
          name: 'nightly',
          description: 'desc',
          schedule: '0 2 * * *',
          timezone: 'Europe/Paris',
          retention: { daily: 7, weekly: 4, monthly: 0, yearly: 0 },
          enabled: false,
          quiesce: 'required',
          compression: 'lz4',
          encryption: 'none',
        },
      },
    ]);
    expect(creates(plan, 'pool')).toEqual([{ kind: 'pool', request: { name: 'rack-a' }, policy: 'nightly', connector: 'cs' }]);
    expect(creates(plan, 'host')).toEqual([
      { kind: 'host', pool: 'rack-a', request: { name: 'kvm1', address: '10.0.0.1', sshPort: 22, username: 'root', tags: [], libvirtUri: 'qemu:///system' } },
    ]);
    expect(plan.notMapped).toEqual([]);
  });

  it('never puts a secret in the report (items, not-mapped reasons, actions)', () => {
    const plan = mapBackroll(source({ connectors: [{ id: id(15), name: 'cs', url: 'https://cloud.example/client/api', login: API_KEY, password: 'short' }] }), OPTS);
    const report = JSON.stringify({ items: plan.resources.map((r) => r.item), notMapped: plan.notMapped, actions: plan.operatorActions });
    for (const s of [SLACK, 'verysecrettoken', API_KEY, 'short']) expect(report).not.toContain(s);
    expect(plan.notMapped).toContainEqual(expect.objectContaining({ kind: 'connector', name: 'cs', reason: 'its secret key is not a CloudStack key (8 to 512 characters, no spaces)' }));
  });

  it('imports policies disabled unless --keep-enabled, and says what to do', () => {
    const plan = mapBackroll(source(), OPTS);
    expect(plan.operatorActions.find((a) => a.id === 'enable-policies')?.targets).toEqual(['nightly']);
    const kept = mapBackroll(source(), { ...OPTS, keepEnabled: true });
    expect(creates(kept, 'policy')[0]).toMatchObject({ request: { enabled: true } });
    expect(kept.operatorActions.map((a) => a.id)).not.toContain('enable-policies');
  });

  it('reports an inexact schedule, creating the wider one, and refuses an unconvertible one', () => {
    const plan = mapBackroll(source({ policies: [policy({ schedule: '0 3 13 * 5' }), policy({ id: id(21), name: 'last-day', schedule: '0 3 L * *' })] }), OPTS);
    expect(creates(plan, 'policy').map((c) => c.kind === 'policy' && [c.request.name, c.request.schedule])).toEqual([['nightly', '0 3 13 * *']]);
    expect(plan.notMapped).toEqual([
      expect.objectContaining({ kind: 'policy', name: 'nightly', field: 'schedule', reason: expect.stringContaining('cannot be expressed exactly') }),
      expect.objectContaining({ kind: 'policy', name: 'last-day', field: 'schedule', reason: expect.stringContaining('"L"') }),
    ]);
    expect(plan.operatorActions.find((a) => a.id === 'review-schedules')?.targets).toEqual(['policy "nightly": "0 3 13 * 5" → "0 3 13 * *"']);
    expect(plan.operatorActions.find((a) => a.id === 'create-by-hand')?.targets).toEqual(['policy "last-day"']);
  });

  it('refuses a retention that keeps nothing (BackROLL never pruned) but keeps its pools, linked by name for a later run', () => {
    const plan = mapBackroll(source({ policies: [policy({ retention: { day: 0, week: -1, month: 0, year: 0 } })] }), OPTS);
    expect(creates(plan, 'policy')).toEqual([]);
    expect(plan.notMapped).toContainEqual(expect.objectContaining({ kind: 'policy', name: 'nightly', field: 'retention', reason: expect.stringContaining('never pruned') }));
    expect(creates(plan, 'pool')).toEqual([expect.objectContaining({ policy: 'nightly' })]);
  });

  it('names what BackROLL left unnamed or named twice, deterministically', () => {
    const plan = mapBackroll(
      source({
        pools: [
          { id: id(30), name: 'rack-a', policyId: id(20), connectorId: null },
          { id: id(31), name: ' rack-a ', policyId: id(20), connectorId: null },
          { id: id(32), name: null, policyId: id(20), connectorId: null },
        ],
        hosts: [host({ poolId: id(31) }), host({ id: id(41), poolId: id(32) })],
      }),
      OPTS,
    );
    expect(creates(plan, 'pool').map((c) => c.kind === 'pool' && c.request.name)).toEqual(['rack-a', `rack-a-${id(31).slice(0, 8)}`, `pool-${id(32).slice(0, 8)}`]);
    expect(creates(plan, 'host').map((c) => c.kind === 'host' && [c.request.name, c.pool])).toEqual([
      ['kvm1', `rack-a-${id(31).slice(0, 8)}`],
      [`kvm1-${id(41).slice(0, 8)}`, `pool-${id(32).slice(0, 8)}`],
    ]);
  });

  it('maps hosts: root when BackROLL never connected, tags split, bad ones reported; refuses a bad address or a missing pool', () => {
    const plan = mapBackroll(
      source({
        hosts: [
          host({ username: null, ssh: false, tags: 'prod, rack:1 bad/tag' }),
          host({ id: id(41), hostname: 'bad', ipaddress: 'not an address' }),
          host({ id: id(42), hostname: 'orphan', poolId: null }),
        ],
      }),
      OPTS,
    );
    const hosts = plan.resources.filter((r) => r.item.kind === 'host');
    expect(hosts.map((h) => h.create)).toEqual([
      { kind: 'host', pool: 'rack-a', request: { name: 'kvm1', address: '10.0.0.1', sshPort: 22, username: 'root', tags: ['prod', 'rack:1'], libvirtUri: 'qemu:///system' } },
    ]);
    expect(hosts[0]!.item.notes).toContain('no SSH user in BackROLL (it never connected to this host): root assumed');
    expect(plan.notMapped.map((n) => [n.kind, n.name, n.field])).toEqual([
      ['host', 'kvm1', 'tags'],
      ['host', 'bad', 'ipaddress'],
      ['host', 'orphan', 'pool'],
    ]);
    const auth = plan.operatorActions.find((a) => a.id === 'authorize-ssh-key')!;
    expect(auth.targets).toEqual(['root@10.0.0.1 (host "kvm1", port 22)']);
    expect(auth.detail).toContain('GET /api/v2/ssh/public-keys');
    expect(auth.command).toBeUndefined();
    expect(mapBackroll(source(), { ...OPTS, installCommand: 'umask 077 && …' }).operatorActions.find((a) => a.id === 'authorize-ssh-key')?.command).toBe('umask 077 && …');
  });

  it('creates a policy without its hook when the hook cannot be imported, and skips a relative storage path', () => {
    const plan = mapBackroll(source({ hooks: [{ id: id(10), name: 'mail', value: SLACK, provider: 'email' }], storages: [{ id: id(1), name: 'nfs', path: 'relative/dir' }] }), OPTS);
    expect(plan.notMapped.map((n) => [n.kind, n.name, n.field ?? null])).toEqual([
      ['storage', 'nfs', null],
      ['hook', 'mail', null],
      ['policy', 'nightly', 'externalhook'],
    ]);
    // The policy still refers to storage "nfs": created once a storage of that name exists.
    expect(creates(plan, 'policy')).toEqual([expect.objectContaining({ storage: 'nfs', hook: null })]);
  });

  it('refuses an unknown time zone', () => {
    expect(() => mapBackroll(source(), { ...OPTS, timezone: 'Mars/Olympus' })).toThrow(/unknown time zone/);
  });
});
