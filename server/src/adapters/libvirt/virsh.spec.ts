import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { classifyVirshFailure, parseDomainState, parseUuidList, parseVersion, Virsh, type CommandResult } from './virsh.js';

const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');
const ok = (stdout: string): CommandResult => ({ code: 0, stdout, stderr: '' });
const fail = (stderr: string, code = 1): CommandResult => ({ code, stdout: '', stderr });

const U1 = '296587dc-cfd7-4f19-ac68-b3db216ca79f';
const U2 = '8d2972ff-22c0-445a-9115-d0683d277bf3';
const U3 = '11111111-2222-3333-4444-555555555555';
const URI = 'qemu:///session';

/** A scripted host: maps the virsh arguments (after `-c URI`) to a result, records every argv. */
function host(script: (args: string[]) => CommandResult | undefined) {
  const calls: string[][] = [];
  const run = async (argv: readonly string[]) => {
    calls.push([...argv]);
    expect(argv.slice(0, 5)).toEqual(['env', 'LC_ALL=C', 'virsh', '-c', URI]);
    return script(argv.slice(5)) ?? fail(`error: unexpected ${argv.slice(5).join(' ')}`);
  };
  return { virsh: new Virsh(run, URI), calls };
}

describe('parsers', () => {
  it('domstate output', () => {
    expect(parseDomainState('running\n\n')).toBe('running');
    expect(parseDomainState('shut off\n\n')).toBe('shut off');
    expect(parseDomainState('in shutdown\n')).toBe('in shutdown');
    expect(parseDomainState('laufend\n')).toBe('unknown');
  });

  it('uuid list', () => {
    expect(parseUuidList(`${U1}\n${U2.toUpperCase()}\n\n`)).toEqual([U1, U2]);
    expect(parseUuidList('\n')).toEqual([]);
    expect(() => parseUuidList(' Id   Name   State\n')).toThrow(/list --uuid printed/);
  });

  it('version output', () => {
    expect(
      parseVersion(
        'Compiled against library: libvirt 9.0.0\nUsing library: libvirt 9.0.0\nUsing API: QEMU 9.0.0\nRunning hypervisor: QEMU 7.2.0\nRunning against daemon: 9.0.0\n\n',
      ),
    ).toEqual({ library: '9.0.0', daemon: '9.0.0', hypervisor: 'QEMU 7.2.0' });
    // qemu:///session, libvirt 9.0: no daemon line.
    expect(
      parseVersion('Compiled against library: libvirt 9.0.0\nUsing library: libvirt 9.0.0\nUsing API: QEMU 9.0.0\nRunning hypervisor: QEMU 7.2.22\n\n'),
    ).toEqual({ library: '9.0.0', daemon: null, hypervisor: 'QEMU 7.2.22' });
  });
});

describe('classifyVirshFailure', () => {
  const ctx = { uri: URI, subcommand: 'dumpxml', domain: 'x y' };
  it('libvirt down', () => {
    for (const stderr of [
      "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/home/u/.cache/libvirt/libvirt-sock': No such file or directory",
      "error: failed to connect to the hypervisor\nerror: internal error: unexpected qemu URI path '/nonexistent', try qemu:///session",
      'error: failed to connect to the hypervisor\nerror: no connection driver available for foo:///',
      'error: End of file while reading data: Input/output error',
    ]) {
      const e = classifyVirshFailure(fail(stderr), ctx);
      expect(e.code).toBe('HOST.LIBVIRT_DOWN');
      expect(e.kind).toBe('unavailable');
      expect(e.message).toContain(URI);
      expect(e.details?.stderr).toBe(stderr);
    }
  });
  it('virsh missing', () => {
    expect(classifyVirshFailure(fail('env: ‘virsh’: No such file or directory', 127), ctx).code).toBe('HOST.LIBVIRT_DOWN');
  });
  it('domain gone', () => {
    for (const stderr of ["error: failed to get domain 'x y'", "error: Domain not found: no domain with matching uuid '1111'"]) {
      const e = classifyVirshFailure(fail(stderr), ctx);
      expect(e.code).toBe('VM.NOT_FOUND');
      expect(e.kind).toBe('not_found');
      expect(e.message).toContain('"x y"');
    }
  });
  it('anything else', () => {
    const e = classifyVirshFailure(fail('error: Requested operation is not valid: domain is not running'), ctx);
    expect(e.code).toBe('LIBVIRT.COMMAND_FAILED');
    expect(e.message).toBe(`virsh dumpxml failed at ${URI}: Requested operation is not valid: domain is not running`);
  });
});

describe('Virsh', () => {
  it('version() checks the daemon answers', async () => {
    const { virsh } = host((a) => (a[0] === 'version' ? ok('Using library: libvirt 9.0.0\nRunning hypervisor: QEMU 7.2.0\nRunning against daemon: 9.0.0\n') : undefined));
    expect(await virsh.version()).toEqual({ library: '9.0.0', daemon: '9.0.0', hypervisor: 'QEMU 7.2.0' });
    const down = host(() => fail('error: failed to connect to the hypervisor\nerror: Failed to connect socket'));
    await expect(down.virsh.version()).rejects.toMatchObject({ code: 'HOST.LIBVIRT_DOWN' });
  });

  it('listDomains reads by UUID only (names never on a command line) and skips a domain that vanished', async () => {
    const evil = fixture('hostile.xml');
    const { virsh, calls } = host((a) => {
      const [cmd, , id] = [a[0], a[1], a[a.length - 1]];
      if (cmd === 'list') return ok(`${U1}\n${U2}\n${U3}\n\n`);
      if (cmd === 'dumpxml' && id === U1) return ok(fixture('libvirt9-running-backing.xml'));
      if (cmd === 'dumpxml' && id === U2) return ok(evil);
      if (id === U3) return fail(`error: failed to get domain '${U3}'`); // undefined meanwhile
      if (cmd === 'domstate' && id === U1) return ok('running\n\n');
      if (cmd === 'domstate' && id === U2) return ok('shut off\n\n');
      return undefined;
    });
    const list = await virsh.listDomains();
    expect(list).toEqual([
      { uuid: U1, name: 'vm-template', state: 'running' },
      { uuid: U2, name: 'evil$(touch PWNED);\'"`id` x & <b> $(', state: 'shut off' },
    ]);
    expect(calls[0]).toEqual(['env', 'LC_ALL=C', 'virsh', '-c', URI, 'list', '--all', '--uuid']);
    for (const c of calls.slice(1)) expect([U1, U2, U3]).toContain(c.at(-1));
    expect(calls.flat().some((x) => x.includes('evil'))).toBe(false);
  });

  it('listDomains propagates real failures', async () => {
    const { virsh } = host((a) => (a[0] === 'list' ? ok(`${U1}\n`) : fail('error: failed to connect to the hypervisor')));
    await expect(virsh.listDomains()).rejects.toMatchObject({ code: 'HOST.LIBVIRT_DOWN' });
  });

  it('domainXml / diskChain / domainState / snapshots pass the identifier as one argv element', async () => {
    const name = "evil$(touch PWNED);'\"`id` x";
    const { virsh, calls } = host((a) => {
      if (a[0] === 'dumpxml') return ok(fixture('chain2.xml'));
      if (a[0] === 'domstate') return ok('paused\n\n');
      if (a[0] === 'snapshot-list') return ok('before-upgrade\nnightly 2024-01-01\n\n');
      return undefined;
    });
    expect((await virsh.diskChain(name))[0]!.backingChain).toHaveLength(2);
    expect(await virsh.domainState(name)).toBe('paused');
    expect(await virsh.snapshots(name)).toEqual(['before-upgrade', 'nightly 2024-01-01']);
    expect(calls.map((c) => c.slice(5))).toEqual([
      ['dumpxml', '--domain', name],
      ['domstate', '--domain', name],
      ['snapshot-list', '--domain', name, '--name'],
    ]);
    await virsh.domainXml(U1, { inactive: true });
    expect(calls.at(-1)!.slice(5)).toEqual(['dumpxml', '--inactive', '--domain', U1]);
  });

  it('VM.NOT_FOUND for a missing domain', async () => {
    const { virsh } = host(() => fail("error: failed to get domain 'nope'"));
    await expect(virsh.domainState('nope')).rejects.toMatchObject({ code: 'VM.NOT_FOUND' });
  });

  describe('guest agent', () => {
    const xmlWithAgent = (state: string) =>
      fixture('chain2.xml').replace("state='disconnected'", `state='${state}'`);

    it('no channel: not configured, no ping', async () => {
      const { virsh, calls } = host((a) => (a[0] === 'dumpxml' ? ok(fixture('hostile.xml')) : a[0] === 'domstate' ? ok('running\n') : undefined));
      expect(await virsh.guestAgent(U1)).toEqual({ configured: false, channelState: null, responding: null });
      expect(await virsh.hasGuestAgent(U1)).toBe(false);
      expect(calls.some((c) => c.includes('qemu-agent-command'))).toBe(false);
    });

    it('running and connected: guest-ping answers', async () => {
      const { virsh, calls } = host((a) =>
        a[0] === 'dumpxml' ? ok(xmlWithAgent('connected')) : a[0] === 'domstate' ? ok('running\n') : a[0] === 'qemu-agent-command' ? ok('{"return":{}}\n') : undefined,
      );
      expect(await virsh.guestAgent(U3)).toEqual({ configured: true, channelState: 'connected', responding: true });
      expect(calls.find((c) => c.includes('qemu-agent-command'))!.slice(5)).toEqual([
        'qemu-agent-command',
        '--domain',
        U3,
        '--timeout',
        '2',
        '{"execute":"guest-ping"}',
      ]);
    });

    it('agent not answering', async () => {
      const { virsh } = host((a) =>
        a[0] === 'dumpxml'
          ? ok(xmlWithAgent('connected'))
          : a[0] === 'domstate'
            ? ok('running\n')
            : fail('error: Guest agent is not responding: QEMU guest agent is not connected'),
      );
      expect(await virsh.guestAgent(U3)).toEqual({ configured: true, channelState: 'connected', responding: false });
      expect(await virsh.hasGuestAgent(U3)).toBe(false);
    });

    it('disconnected channel or stopped domain: no ping', async () => {
      const a = host((x) => (x[0] === 'dumpxml' ? ok(xmlWithAgent('disconnected')) : x[0] === 'domstate' ? ok('running\n') : undefined));
      expect(await a.virsh.guestAgent(U3)).toEqual({ configured: true, channelState: 'disconnected', responding: false });
      const b = host((x) => (x[0] === 'dumpxml' ? ok(fixture('twodisks.xml')) : x[0] === 'domstate' ? ok('shut off\n') : undefined));
      expect(await b.virsh.guestAgent(U3)).toEqual({ configured: true, channelState: null, responding: null });
      expect([...a.calls, ...b.calls].some((c) => c.includes('qemu-agent-command'))).toBe(false);
    });
  });
});
