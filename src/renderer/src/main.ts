import { createPinia } from 'pinia';
import { createApp } from 'vue';
import App from './App.vue';
import { connectApi } from './bridge';
import { API_KEY } from './stores/api';
import './style.css';

const app = createApp(App);
app.use(createPinia());
app.provide(API_KEY, connectApi());
app.mount('#app');
