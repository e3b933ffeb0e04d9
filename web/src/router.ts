// Routes: every screen is a lazy chunk. Pages need a session except sign-in and the
// OpenID callback; without one the guard starts sign-in and comes back to the same URL.
import { createRouter, createWebHistory, type RouteRecordRaw } from 'vue-router';
import { ensureSession, signIn } from './auth';
import { session } from './auth/session';

declare module 'vue-router' {
  interface RouteMeta {
    public?: boolean;
    title?: string;
  }
}

export const routes: RouteRecordRaw[] = [
  { path: '/', name: 'dashboard', component: () => import('./views/dashboard/DashboardView.vue'), meta: { title: 'Dashboard' } },
  { path: '/signin', name: 'signin', component: () => import('./views/auth/SignInView.vue'), meta: { public: true, title: 'Sign in' } },
  { path: '/ui/callback', name: 'callback', component: () => import('./views/auth/CallbackView.vue'), meta: { public: true, title: 'Signing in' } },
  { path: '/virtual-machines', name: 'vms', component: () => import('./views/vms/VmsView.vue'), meta: { title: 'Virtual machines' } },
  { path: '/virtual-machines/:id', name: 'vm', component: () => import('./views/vms/VmDetailView.vue'), props: true, meta: { title: 'Virtual machine' } },
  { path: '/tasks', name: 'tasks', component: () => import('./views/tasks/TasksView.vue'), meta: { title: 'Tasks' } },
  { path: '/tasks/:id', name: 'task', component: () => import('./views/tasks/TaskDetailView.vue'), props: true, meta: { title: 'Task' } },
  // Admin screens (owned by web-admin).
  { path: '/policies', name: 'policies', component: () => import('./views/policies/PoliciesView.vue'), meta: { title: 'Policies' } },
  { path: '/policies/new', name: 'policy-new', component: () => import('./views/policies/PolicyEditView.vue'), meta: { title: 'New policy' } },
  { path: '/policies/:id', name: 'policy', component: () => import('./views/policies/PolicyEditView.vue'), props: true, meta: { title: 'Policy' } },
  { path: '/pools', name: 'pools', component: () => import('./views/pools/PoolsView.vue'), meta: { title: 'Pools' } },
  { path: '/hosts', name: 'hosts', component: () => import('./views/hosts/HostsView.vue'), meta: { title: 'Hosts' } },
  { path: '/hosts/:id', name: 'host', component: () => import('./views/hosts/HostDetailView.vue'), props: true, meta: { title: 'Host' } },
  { path: '/storages', name: 'storages', component: () => import('./views/storages/StoragesView.vue'), meta: { title: 'Storages' } },
  { path: '/hooks', name: 'hooks', component: () => import('./views/hooks/HooksView.vue'), meta: { title: 'Hooks' } },
  { path: '/connectors', name: 'connectors', component: () => import('./views/connectors/ConnectorsView.vue'), meta: { title: 'Connectors' } },
  { path: '/settings', name: 'settings', component: () => import('./views/settings/SettingsView.vue'), meta: { title: 'Settings' } },
  { path: '/:pathMatch(.*)*', name: 'not-found', component: () => import('./views/NotFoundView.vue'), meta: { title: 'Not found' } },
];

export const router = createRouter({
  history: createWebHistory('/'),
  routes,
  scrollBehavior: (_to, _from, saved) => saved ?? { top: 0 },
});

router.beforeEach(async (to) => {
  if (to.meta.public) return true;
  let ok = false;
  try {
    ok = await ensureSession();
  } catch {
    ok = false;
  }
  if (ok) return true;
  // Signed out on purpose: show the sign-in page instead of bouncing to the provider.
  if (session.signedOut()) return { name: 'signin', query: { returnTo: to.fullPath } };
  try {
    await signIn(to.fullPath);
  } catch (err) {
    return { name: 'signin', query: { returnTo: to.fullPath, error: err instanceof Error ? err.message : String(err) } };
  }
  return false;
});

router.afterEach((to) => {
  document.title = to.meta.title ? `${to.meta.title} · Backroll` : 'Backroll';
});
