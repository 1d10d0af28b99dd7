/**
 * The preload bridge: the renderer's only way to the app. It exposes `window.lrnet` with two functions (call a
 * contract method, hear live events) and nothing else: no ipcRenderer, no Node. Sandboxed preloads cannot import
 * local files at run time, so this file is bundled (main/vite.config.js) into out/main/preload.cjs; it imports
 * only channel names and types from the contract.
 */
import { contextBridge, ipcRenderer, type IpcRendererEvent } from 'electron';
import { IPC_CHANNELS, type LiveEvent, type PreloadBridge, type ApiResult } from '../app/contract.ts';

const bridge = {
  invoke: (method: string, payload: unknown) => ipcRenderer.invoke(IPC_CHANNELS.invoke, method, payload) as Promise<ApiResult<unknown>>,
  onEvent(listener: (event: LiveEvent) => void) {
    const handler = (_event: IpcRendererEvent, event: LiveEvent) => listener(event);
    ipcRenderer.on(IPC_CHANNELS.event, handler);
    return () => {
      ipcRenderer.removeListener(IPC_CHANNELS.event, handler);
    };
  },
} satisfies PreloadBridge;

contextBridge.exposeInMainWorld('lrnet', bridge);
