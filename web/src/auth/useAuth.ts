// Sign-in state for the whole app: authorization code + PKCE, tokens in sessionStorage,
// silent renewal with the refresh token before expiry, and a return to the page the user
// was on whenever the session ends.
import { computed, reactive, readonly } from 'vue';
import { api, ApiError, setAuthHooks } from '../api/client';
import type { Me } from '../api/types';
import { consoleConfig, discovery, SignInError, tokenRequest } from './oidc';
import { challengeS256, randomString } from './pkce';
import { session, type Tokens } from './session';

/** Renew this long before the access token expires. */
const RENEW_BEFORE_MS = 60_000;

const state = reactive({
  me: null as Me | null,
  signedIn: false,
  renewing: false,
  error: null as string | null,
});

let refreshFlight: Promise<Tokens | null> | null = null;
let renewTimer: ReturnType<typeof setTimeout> | undefined;

function currentPath(): string {
  return window.location.pathname + window.location.search + window.location.hash;
}

function scheduleRenew(tokens: Tokens): void {
  clearTimeout(renewTimer);
  if (!tokens.refreshToken) return;
  const wait = Math.max(5_000, tokens.expiresAt - Date.now() - RENEW_BEFORE_MS);
  renewTimer = setTimeout(() => void refresh(), Math.min(wait, 2 ** 31 - 1));
}

async function refresh(): Promise<Tokens | null> {
  const tokens = session.tokens();
  if (!tokens?.refreshToken) return null;
  refreshFlight ??= (async () => {
    state.renewing = true;
    try {
      const cfg = await consoleConfig();
      const params: Record<string, string> = { grant_type: 'refresh_token', refresh_token: tokens.refreshToken!, client_id: cfg.clientId };
      if (cfg.resource) params.resource = cfg.resource;
      const next = await tokenRequest(params);
      if (!next.refreshToken) next.refreshToken = tokens.refreshToken; // providers that do not rotate
      if (!next.idToken) next.idToken = tokens.idToken;
      session.saveTokens(next);
      scheduleRenew(next);
      return next;
    } catch {
      return null;
    } finally {
      state.renewing = false;
      refreshFlight = null;
    }
  })();
  return refreshFlight;
}

/** A valid access token, renewed when about to expire; null when signed out. */
export async function accessToken(): Promise<string | null> {
  const tokens = session.tokens();
  if (!tokens) return null;
  if (tokens.expiresAt - Date.now() > 15_000) return tokens.accessToken;
  const renewed = await refresh();
  return renewed?.accessToken ?? null;
}

/** Starts the authorization code flow; the browser leaves the app. */
export async function signIn(returnTo = currentPath()): Promise<never> {
  const [cfg, doc] = await Promise.all([consoleConfig(), discovery()]);
  const verifier = randomString(48);
  const st = randomString(24);
  session.savePending({ state: st, verifier, returnTo: safeReturn(returnTo), startedAt: Date.now() });
  const url = new URL(doc.authorization_endpoint, window.location.origin);
  url.searchParams.set('client_id', cfg.clientId);
  url.searchParams.set('response_type', 'code');
  url.searchParams.set('redirect_uri', cfg.redirectUri);
  url.searchParams.set('scope', cfg.scope);
  url.searchParams.set('state', st);
  url.searchParams.set('code_challenge', await challengeS256(verifier));
  url.searchParams.set('code_challenge_method', 'S256');
  if (cfg.resource) url.searchParams.set('resource', cfg.resource);
  window.location.assign(url.toString());
  return new Promise<never>(() => {});
}

/** Only same-app paths: a crafted `returnTo` cannot send the user elsewhere. */
function safeReturn(path: string): string {
  if (!path.startsWith('/') || path.startsWith('//') || path.startsWith('/ui/callback') || path.startsWith('/signin')) return '/';
  return path;
}

/** Handles /ui/callback?code=…&state=…; returns the path to go back to. */
export async function completeSignIn(search: string): Promise<string> {
  const params = new URLSearchParams(search);
  const pending = session.pending();
  const error = params.get('error');
  if (error) {
    session.clearPending();
    throw new SignInError(`The sign-in service answered: ${params.get('error_description') ?? error}`, `OIDC.${error.toUpperCase()}`);
  }
  const code = params.get('code');
  if (!code || !pending || params.get('state') !== pending.state) {
    session.clearPending();
    throw new SignInError('This sign-in link is stale or was opened in another tab; sign in again.', 'AUTH.STATE_MISMATCH');
  }
  const cfg = await consoleConfig();
  const body: Record<string, string> = {
    grant_type: 'authorization_code',
    code,
    redirect_uri: cfg.redirectUri,
    client_id: cfg.clientId,
    code_verifier: pending.verifier,
  };
  if (cfg.resource) body.resource = cfg.resource;
  const tokens = await tokenRequest(body);
  session.clearPending();
  session.saveTokens(tokens);
  scheduleRenew(tokens);
  state.signedIn = true;
  await loadMe();
  return pending.returnTo;
}

async function loadMe(): Promise<Me> {
  try {
    const me = await api.get<Me>('/me');
    // A user signed in through this console carries the console's client id (azp): that is
    // not a machine client, and not the user's name.
    const cfg = await consoleConfig().catch(() => null);
    if (cfg && me.name === cfg.clientId && me.subject !== cfg.clientId) state.me = { ...me, name: me.subject, kind: 'user' };
    else state.me = me;
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 404) throw err;
    // A server without GET /me: the older /auth/me has subject, label and roles.
    const old = await api.get<{ subject: string; label?: string; roles: string[] }>('/auth/me');
    state.me = { subject: old.subject, name: old.label ?? old.subject, roles: old.roles, isAdmin: old.roles.includes('admin'), kind: 'user' };
  }
  return state.me;
}

/** For the router guard: true when a session exists (renewing it if needed). */
export async function ensureSession(): Promise<boolean> {
  const tokens = session.tokens();
  if (!tokens) return false;
  if (!(await accessToken())) {
    session.clearTokens();
    return false;
  }
  state.signedIn = true;
  scheduleRenew(session.tokens()!);
  if (!state.me) await loadMe();
  return true;
}

export async function signOut(): Promise<void> {
  const tokens = session.tokens();
  clearTimeout(renewTimer);
  session.clearTokens();
  session.markSignedOut();
  state.signedIn = false;
  state.me = null;
  try {
    const doc = await discovery();
    if (doc.end_session_endpoint && tokens?.idToken) {
      const url = new URL(doc.end_session_endpoint, window.location.origin);
      url.searchParams.set('id_token_hint', tokens.idToken);
      url.searchParams.set('post_logout_redirect_uri', `${window.location.origin}/`);
      window.location.assign(url.toString());
      return;
    }
  } catch {
    /* the provider is unreachable: the local session is gone anyway */
  }
  window.location.assign('/signin');
}

/** The session ended (refresh refused): back to sign-in, then to this page. */
async function sessionExpired(): Promise<void> {
  session.clearTokens();
  state.signedIn = false;
  await signIn(currentPath());
}

setAuthHooks({
  token: accessToken,
  async onUnauthenticated(code) {
    if (!session.tokens()) return false;
    if (code === 'AUTH.TOKEN_EXPIRED' || code === 'AUTH.TOKEN_INVALID' || code === '') {
      if (await refresh()) return true;
    }
    void sessionExpired();
    return false;
  },
});

export function useAuth() {
  return {
    state: readonly(state),
    me: computed(() => state.me),
    signedIn: computed(() => state.signedIn),
    isAdmin: computed(() => state.me?.isAdmin === true),
    userName: computed(() => state.me?.name ?? ''),
    signIn,
    signOut,
    accessToken,
  };
}

/** For tests: set the signed-in user without a provider. */
export function setMeForTests(me: Me | null): void {
  state.me = me;
  state.signedIn = me !== null;
}
