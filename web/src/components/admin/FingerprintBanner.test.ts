import { afterEach, describe, expect, it } from 'vitest';
import { flushPromises, mount } from '@vue/test-utils';
import { NAlert } from 'naive-ui';
import FingerprintBanner from './FingerprintBanner.vue';
import { presentedFingerprintOf } from './fingerprint';

const PINNED = 'SHA256:pinnedpinnedpinnedpinnedpinnedpinnedpinne';
const NOW = 'SHA256:n3wk3yn3wk3yn3wk3yn3wk3yn3wk3yn3wk3yn3wk3y+/';
const $ = (sel: string) => document.body.querySelector<HTMLElement>(sel);

describe('presentedFingerprintOf', () => {
  it('reads the problem field, else the host message', () => {
    expect(presentedFingerprintOf({ presentedFingerprint: NOW })).toBe(NOW);
    expect(
      presentedFingerprintOf({ message: `host key of 10.0.0.5 has changed: pinned ${PINNED}, server presented ${NOW} (ssh-ed25519). Connection refused` }),
    ).toBe(NOW);
    expect(presentedFingerprintOf({ message: 'server presented (unknown).' })).toBeNull();
    expect(presentedFingerprintOf(null)).toBeNull();
  });
});

describe('FingerprintBanner', () => {
  afterEach(() => {
    document.body.innerHTML = '';
  });

  it('shows both fingerprints in a red alert', () => {
    const w = mount(FingerprintBanner, { props: { hostName: 'kvm1', pinnedFingerprint: PINNED, presentedFingerprint: NOW }, attachTo: document.body });
    const banner = w.find('[data-test="host-key-changed-banner"]');
    expect(w.findComponent(NAlert).props('type')).toBe('error');
    expect(banner.attributes('role')).toBe('alert');
    expect(banner.text()).toContain('The SSH host key of kvm1 has changed');
    expect(w.find('[data-test="pinned-fingerprint"]').text()).toBe(PINNED);
    expect(w.find('[data-test="presented-fingerprint"]').text()).toBe(NOW);
  });

  it('re-trusts only after the operator confirms having checked the key, with the presented fingerprint', async () => {
    const w = mount(FingerprintBanner, { props: { hostName: 'kvm1', pinnedFingerprint: PINNED, presentedFingerprint: NOW }, attachTo: document.body });
    await w.find('[data-test="retrust-host-key"]').trigger('click');
    await flushPromises();
    expect($('[data-test="retrust-dialog-fingerprint"]')?.textContent).toBe(NOW);
    const confirm = $('[data-test="retrust-confirm"]') as HTMLButtonElement;
    expect(confirm.disabled).toBe(true);
    confirm.click();
    expect(w.emitted('trust')).toBeUndefined();

    ($('[data-test="retrust-confirm-checkbox"]') as HTMLElement).click();
    await flushPromises();
    expect(confirm.disabled).toBe(false);
    confirm.click();
    await flushPromises();
    expect(w.emitted('trust')).toEqual([[NOW]]);
  });

  it('cancel emits nothing and returns the focus to the button that opened the dialog', async () => {
    const w = mount(FingerprintBanner, { props: { hostName: 'kvm1', pinnedFingerprint: PINNED, presentedFingerprint: NOW }, attachTo: document.body });
    const opener = w.find('[data-test="retrust-host-key"]').element as HTMLButtonElement;
    opener.focus();
    opener.click();
    await flushPromises();
    ($('[data-test="retrust-cancel"]') as HTMLElement).click();
    await flushPromises();
    expect(w.emitted('trust')).toBeUndefined();
    expect(document.activeElement).toBe(opener);
  });

  it('viewers and an unknown presented key cannot re-trust', async () => {
    const w = mount(FingerprintBanner, { props: { hostName: 'kvm1', pinnedFingerprint: PINNED, presentedFingerprint: NOW, canTrust: false } });
    expect((w.find('[data-test="retrust-host-key"]').element as HTMLButtonElement).disabled).toBe(true);
    await w.setProps({ canTrust: true, presentedFingerprint: null });
    expect((w.find('[data-test="retrust-host-key"]').element as HTMLButtonElement).disabled).toBe(true);
    expect(w.find('[data-test="presented-fingerprint"]').text()).toContain('unknown');
    await w.find('[data-test="host-key-check-again"]').trigger('click');
    expect(w.emitted('check-again')).toHaveLength(1);
  });
});
