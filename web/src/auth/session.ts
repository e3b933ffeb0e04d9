// Token storage: sessionStorage, so a reload keeps the user signed in while closing the tab
// ends the session. Nothing is written to localStorage or cookies.
export interface Tokens {
  accessToken: string;
  refreshToken: string | null;
  idToken: string | null;
  /** Epoch milliseconds. */
  expiresAt: number;
}

export interface PendingSignIn {
  state: string;
  verifier: string;
  returnTo: string;
  startedAt: number;
}

const TOKENS = 'backroll.tokens';
const PENDING = 'backroll.signin';
const SIGNED_OUT = 'backroll.signedOut';

function read<T>(key: string): T | null {
  try {
    const raw = sessionStorage.getItem(key);
    return raw ? (JSON.parse(raw) as T) : null;
  } catch {
    return null;
  }
}

export const session = {
  tokens: (): Tokens | null => read<Tokens>(TOKENS),
  saveTokens(t: Tokens): void {
    sessionStorage.setItem(TOKENS, JSON.stringify(t));
    sessionStorage.removeItem(SIGNED_OUT);
  },
  clearTokens(): void {
    sessionStorage.removeItem(TOKENS);
  },
  pending: (): PendingSignIn | null => read<PendingSignIn>(PENDING),
  savePending(p: PendingSignIn): void {
    sessionStorage.setItem(PENDING, JSON.stringify(p));
  },
  clearPending(): void {
    sessionStorage.removeItem(PENDING);
  },
  markSignedOut(): void {
    sessionStorage.setItem(SIGNED_OUT, '1');
  },
  signedOut: (): boolean => sessionStorage.getItem(SIGNED_OUT) === '1',
};
