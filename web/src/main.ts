import { createPinia } from 'pinia';
import { createApp } from 'vue';
import App from './App.vue';
import { vCanWrite } from './components/canWrite';
import { router } from './router';
import './styles.css';

const app = createApp(App);
app.use(createPinia());
app.use(router);
app.directive('can-write', vCanWrite);
app.mount('#app');
