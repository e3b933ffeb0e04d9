// naive-ui's message/notification/dialog APIs captured once inside the providers (App.vue),
// so stores and plain modules can raise toasts. `toastTask` links the toast to the task page.
import { h } from 'vue';
import { RouterLink } from 'vue-router';
import type { DialogApi, MessageApi, NotificationApi } from 'naive-ui';

let message: MessageApi | null = null;
let notification: NotificationApi | null = null;
let dialog: DialogApi | null = null;

export function installFeedback(apis: { message: MessageApi; notification: NotificationApi; dialog: DialogApi }): void {
  message = apis.message;
  notification = apis.notification;
  dialog = apis.dialog;
}

export function toastSuccess(text: string): void {
  message?.success(text, { duration: 4000 });
}

export function toastError(text: string): void {
  message?.error(text, { duration: 8000, closable: true });
}

/** "Backup of web-1 started" with a link to the task it started. */
export function toastTask(title: string, taskId: string, description?: string): void {
  if (!notification) return;
  notification.info({
    title,
    description,
    duration: 6000,
    keepAliveOnHover: true,
    content: () => h(RouterLink, { to: `/tasks/${taskId}`, 'data-test': 'toast-task-link' }, () => 'Open the task'),
  });
}

export function useDialog(): DialogApi | null {
  return dialog;
}
