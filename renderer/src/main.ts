/** Entry point of the UI: one client for this window (Electron bridge or HTTP), then the app. */
import { mount } from 'svelte';
import './styles.css';
import App from './App.svelte';
import { createClient } from './lib/api.ts';

const client = createClient();
mount(App, { target: document.getElementById('app')!, props: { client } });
