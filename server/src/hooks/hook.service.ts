import { isoNow, type Clock } from '../clock.js';
import type { SecretBox } from '../crypto/secret-box.js';
import type { PageRequest, PageResult } from '../db/page.js';
import { AppError, invalid } from '../errors.js';
import { assertUnreferenced, found, uniqueName } from '../shared/service-helpers.js';
import { checkHttpUrl, redactUrl } from '../shared/urls.js';
import type { DeliveryResult, HookNotifier } from './hook.notifier.js';
import type { HookEvent, HookKind, HookRepository, HookRow } from './hook.repository.js';

export interface HookInput {
  name: string;
  kind: HookKind;
  /** Slack incoming-webhook URL or webhook endpoint; a secret (Slack's URL is the credential). */
  url: string;
  /** HMAC signing key of generic webhooks. */
  secret?: string | null;
  events: HookEvent[];
}

/** What the API shows: secrets never, only whether they are set and where the URL points. */
export interface HookView {
  id: string;
  name: string;
  kind: HookKind;
  urlHint: string;
  secretSet: boolean;
  events: HookEvent[];
  createdAt: string;
  updatedAt: string;
}

/** What the notifier gets: the opened secrets, for sending only. */
export interface HookTarget {
  id: string;
  name: string;
  kind: HookKind;
  url: string;
  secret: string | null;
  events: HookEvent[];
}

export class HookService {
  constructor(
    private readonly repo: HookRepository,
    private readonly box: SecretBox,
    private readonly clock: Clock,
    private readonly notifier?: HookNotifier,
  ) {}

  /**
   * Sends a test notification now (one attempt, the configured timeout): the
   * given event, or the hook's first one, with `"test": true` in the body.
   */
  async test(id: string, event?: HookEvent): Promise<DeliveryResult & { event: HookEvent }> {
    const hook = await this.target(id);
    if (!this.notifier) throw new AppError('unavailable', 'HOOK.NOTIFIER_UNAVAILABLE', 'notifications are not configured in this process');
    const ev = event ?? hook.events[0] ?? 'backup.succeeded';
    const result = await this.notifier.deliver(
      hook,
      {
        event: ev,
        text: `:wave: Backroll test notification for hook "${hook.name}" (${ev}). Real notifications look like this one.`,
        data: { test: true, hook: { id: hook.id, name: hook.name } },
      },
      { attempts: 1, test: true },
    );
    return { ...result, event: ev };
  }

  async create(input: HookInput): Promise<HookView> {
    const clean = this.validate(input);
    const row = await uniqueName('hook', clean.name, () => this.repo.insert(this.seal(clean), isoNow(this.clock)));
    return this.view(row);
  }

  async update(id: string, patch: Partial<HookInput>): Promise<HookView> {
    const current = this.open(found(await this.repo.findById(id), 'hook', id));
    const merged: HookInput = {
      name: patch.name ?? current.name,
      kind: patch.kind ?? current.kind,
      url: patch.url ?? current.url,
      secret: patch.secret === undefined ? current.secret : patch.secret,
      events: patch.events ?? current.events,
    };
    const clean = this.validate(merged);
    await uniqueName('hook', clean.name, () => this.repo.update(id, this.seal(clean), isoNow(this.clock)));
    return this.get(id);
  }

  async get(id: string): Promise<HookView> {
    return this.view(found(await this.repo.findById(id), 'hook', id));
  }

  async exists(id: string): Promise<boolean> {
    return (await this.repo.findById(id)) !== undefined;
  }

  /** For the notifier only: never exposed through the API. */
  async target(id: string): Promise<HookTarget> {
    return this.open(found(await this.repo.findById(id), 'hook', id));
  }

  async list(page: PageRequest): Promise<PageResult<HookView>> {
    const res = await this.repo.list(page);
    return { ...res, items: res.items.map((r) => this.view(r)) };
  }

  async delete(id: string): Promise<void> {
    const current = found(await this.repo.findById(id), 'hook', id);
    const policies = await this.repo.referencingPolicies(id);
    assertUnreferenced('hook', current.name, policies.map((p) => ({ type: 'policy', ...p })));
    await this.repo.delete(id);
  }

  private validate(input: HookInput): HookInput {
    const url = checkHttpUrl(input.url, 'HOOK.URL_INVALID', 'hook URL');
    if (input.kind === 'slack' && input.secret) {
      throw invalid('HOOK.SECRET_NOT_SUPPORTED', 'Slack hooks are authenticated by their URL; a signing secret is only for kind "webhook"');
    }
    if (input.events.length === 0) throw invalid('HOOK.NO_EVENTS', 'a hook needs at least one event to be notified of');
    return { ...input, name: input.name.trim(), url, events: [...new Set(input.events)] };
  }

  private seal(i: HookInput) {
    return {
      name: i.name,
      kind: i.kind,
      urlSealed: this.box.encrypt(i.url),
      secretSealed: i.secret ? this.box.encrypt(i.secret) : null,
      events: i.events,
    };
  }

  private open(row: HookRow): HookTarget {
    return {
      id: row.id,
      name: row.name,
      kind: row.kind,
      url: this.box.decrypt(row.urlSealed),
      secret: row.secretSealed ? this.box.decrypt(row.secretSealed) : null,
      events: row.events,
    };
  }

  private view(row: HookRow): HookView {
    return {
      id: row.id,
      name: row.name,
      kind: row.kind,
      urlHint: redactUrl(this.box.decrypt(row.urlSealed)),
      secretSet: row.secretSealed !== null,
      events: row.events,
      createdAt: row.createdAt,
      updatedAt: row.updatedAt,
    };
  }
}
