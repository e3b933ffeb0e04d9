/**
 * Test helpers of the admin screens: a scripted API behind `fetch` (each call
 * recorded with its method, path, query and body) and a mount with a router,
 * pinia and a signed-in user.
 */
import { vi } from 'vitest';
import { createPinia, setActivePinia } from 'pinia';
import { mount } from '@vue/test-utils';
import { createMemoryHistory, createRouter } from 'vue-router';
import { defineComponent, h, type Component } from 'vue';
import { setMeForTests } from '../../auth';

export interface Call {
  method: string;
  path: string;
  query: URLSearchParams;
  body: unknown;
}
type Answer = { status?: number; body?: unknown } | ((call: Call) => { status?: number; body?: unknown });

/** Routes like 'GET /hosts' or 'POST /hosts/:id/connect' (paths under /api/v2; ':x' matches one segment). */
export function mockApi(routes: Record<string, Answer>) {
  const calls: Call[] = [];
  const table = Object.entries(routes).map(([key, answer]) => {
    const [method, pattern] = key.split(' ') as [string, string];
    const re = new RegExp(`^${pattern.replace(/:[a-zA-Z]+/g, '[^/]+')}$`);
    return { method, re, answer };
  });
  const fetchMock = vi.fn(async (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(String(input), 'http://console.test');
    const path = url.pathname.replace(/^\/api\/v2/, '');
    const method = (init?.method ?? 'GET').toUpperCase();
    const call: Call = { method, path, query: url.searchParams, body: init?.body ? JSON.parse(String(init.body)) : undefined };
    calls.push(call);
    const hit = table.find((r) => r.method === method && r.re.test(path));
    if (!hit) {
      return new Response(JSON.stringify({ status: 404, code: 'TEST.NO_ROUTE', detail: `no test route for ${method} ${path}` }), {
        status: 404,
        headers: { 'content-type': 'application/problem+json' },
      });
    }
    const a = typeof hit.answer === 'function' ? hit.answer(call) : hit.answer;
    const status = a.status ?? 200;
    return new Response(status === 204 ? null : JSON.stringify(a.body ?? {}), {
      status,
      headers: { 'content-type': status >= 400 ? 'application/problem+json' : 'application/json' },
    });
  });
  vi.stubGlobal('fetch', fetchMock);
  return { calls, fetchMock, find: (method: string, path: string) => calls.filter((c) => c.method === method && c.path === path) };
}

export function signInAs(role: 'admin' | 'viewer') {
  setMeForTests({ subject: role, name: role, roles: role === 'admin' ? ['admin', 'viewer'] : ['viewer'], isAdmin: role === 'admin', kind: 'user' });
}

/** Mounts a page at a URL, with a router whose every other route is a stub. */
export async function mountPage(page: Component, url: string, pattern: string, props: Record<string, unknown> = {}) {
  setActivePinia(createPinia());
  const Stub = defineComponent({ render: () => h('div') });
  const router = createRouter({
    history: createMemoryHistory(),
    routes: [
      { path: pattern, component: page, props: () => props },
      { path: '/:rest(.*)*', component: Stub },
    ],
  });
  await router.push(url);
  await router.isReady();
  const Root = defineComponent({ render: () => h('div', [h(RouterViewProxy)]) });
  const wrapper = mount(Root, { global: { plugins: [router] }, attachTo: document.body });
  return { wrapper, router };
}

import { RouterView } from 'vue-router';
const RouterViewProxy = RouterView;

/** Waits until `check` passes (the UI settles after a few fetches and ticks). */
export async function until(check: () => boolean | void, timeoutMs = 3000): Promise<void> {
  const start = Date.now();
  let last: unknown;
  for (;;) {
    try {
      if (check() !== false) return;
    } catch (err) {
      last = err;
    }
    if (Date.now() - start > timeoutMs) throw last instanceof Error ? last : new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

export const $ = (sel: string) => document.body.querySelector<HTMLElement>(sel);
export const $$ = (sel: string) => [...document.body.querySelectorAll<HTMLElement>(sel)];

/** Types into an input as a user does (value + input event). */
export function type(el: HTMLElement | null, value: string) {
  if (!el) throw new Error('no input to type into');
  (el as HTMLInputElement).value = value;
  el.dispatchEvent(new Event('input', { bubbles: true }));
}
