import { describe, expect, it } from 'vitest';
import { ConfigError } from '../errors.js';
import { describeConfig, loadConfig, maskUrl } from './config.js';

describe('configuration', () => {
  it('has embedded defaults', () => {
    const c = loadConfig({}, '/srv/backroll');
    expect(c).toMatchObject({
      dataDir: '/srv/backroll/data',
      host: '0.0.0.0',
      port: 5050,
      publicUrl: 'http://localhost:5050',
      roles: ['api', 'worker', 'scheduler'],
      database: { dialect: 'sqlite', url: '/srv/backroll/data/backroll.db' },
      oidc: { embedded: true, issuer: 'http://localhost:5050/oidc', audience: 'backroll', rolesClaim: 'roles' },
    });
  });

  it('reads PostgreSQL, MariaDB and an external issuer', () => {
    const c = loadConfig({
      BACKROLL_DATABASE_URL: 'postgresql://backroll:pw@db:5432/backroll',
      BACKROLL_OIDC_ISSUER: 'https://sso.example/realms/ops/',
      BACKROLL_OIDC_ROLES_CLAIM: 'realm_access.roles',
    });
    expect(c.database.dialect).toBe('postgres');
    expect(c.oidc).toMatchObject({ embedded: false, issuer: 'https://sso.example/realms/ops', rolesClaim: 'realm_access.roles' });
    expect(loadConfig({ BACKROLL_DATABASE_URL: 'mariadb://root@127.0.0.1/test' }).database).toEqual({ dialect: 'mysql', url: 'mysql://root@127.0.0.1/test' });
  });

  it('stops with every problem named by its variable', () => {
    let err: unknown;
    try {
      loadConfig({
        BACKROLL_PORT: '70000',
        BACKROLL_LOG_LEVEL: 'loud',
        BACKROLL_DATABASE_URL: 'oracle://x',
        BACKROLL_ROLES: 'api,cook',
        BACKROLL_OIDC_ALGORITHMS: 'HS256',
        BACKROLL_METRICS: 'maybe',
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const msg = (err as ConfigError).message;
    for (const v of ['BACKROLL_PORT', 'BACKROLL_LOG_LEVEL', 'BACKROLL_DATABASE_URL', 'BACKROLL_ROLES', 'BACKROLL_OIDC_ALGORITHMS', 'BACKROLL_METRICS']) {
      expect(msg).toContain(v);
    }
    expect(msg).toContain('expected an integer between 0 and 65535');
  });

  it('trusts no proxy by default; BACKROLL_TRUST_PROXY takes true, hops or proxy addresses', () => {
    expect(loadConfig({}).trustProxy).toBe(false);
    expect(loadConfig({ BACKROLL_TRUST_PROXY: 'false' }).trustProxy).toBe(false);
    expect(loadConfig({ BACKROLL_TRUST_PROXY: 'true' }).trustProxy).toBe(true);
    expect(loadConfig({ BACKROLL_TRUST_PROXY: '1' }).trustProxy).toBe(1);
    expect(loadConfig({ BACKROLL_TRUST_PROXY: '10.0.0.5, 192.168.0.0/16,::1' }).trustProxy).toEqual(['10.0.0.5', '192.168.0.0/16', '::1']);
    for (const bad of ['proxy.example', '10.0.0.0/40', '99']) {
      expect(() => loadConfig({ BACKROLL_TRUST_PROXY: bad }), bad).toThrow(/BACKROLL_TRUST_PROXY/);
    }
  });

  it('masks passwords when printing the configuration', () => {
    expect(maskUrl('postgres://u:secret@h/db')).toBe('postgres://u:****@h/db');
    const printed = JSON.stringify(describeConfig(loadConfig({ BACKROLL_DATABASE_URL: 'mysql://root:hunter2@db/backroll', BACKROLL_REDIS_URL: 'redis://:pass@r:6379' })));
    expect(printed).not.toContain('hunter2');
    expect(printed).not.toContain(':pass@');
  });
});
