/** One HTTP POST with a timeout; the only place notifications touch the network. */
export interface HttpPoster {
  post(url: string, body: string, headers: Record<string, string>, timeoutMs: number): Promise<{ status: number; body: string }>;
}

export const fetchPoster: HttpPoster = {
  async post(url, body, headers, timeoutMs) {
    const res = await fetch(url, { method: 'POST', body, headers, redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
    // Read a little of the answer for the log; never more.
    const text = (await res.text().catch(() => '')).slice(0, 200);
    return { status: res.status, body: text };
  },
};
