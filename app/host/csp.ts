/**
 * The Content-Security-Policy of the UI, shared by the headless host (HTTP header) and the Electron window
 * (response header of the app:// protocol), so the renderer runs under the same rules in both shells.
 */

export interface CspOptions {
  /** Extra connect-src sources, e.g. the host's WebSocket origin ("ws://127.0.0.1:8421"). */
  readonly connect?: readonly string[];
}

/**
 * Only the app's own scripts run: no inline scripts, no eval, no remote code, no plugins, no framing, no forms.
 * Inline styles stay allowed because Svelte's templates and the charts position elements with style attributes;
 * that opens no script execution.
 */
export function contentSecurityPolicy(options: CspOptions = {}): string {
  const directives: Record<string, readonly string[]> = {
    'default-src': ["'self'"],
    'script-src': ["'self'"],
    'style-src': ["'self'", "'unsafe-inline'"],
    'img-src': ["'self'", 'data:', 'blob:'],
    'font-src': ["'self'"],
    'connect-src': ["'self'", ...(options.connect ?? [])],
    'worker-src': ["'none'"],
    'object-src': ["'none'"],
    'base-uri': ["'none'"],
    'form-action': ["'none'"],
    'frame-ancestors': ["'none'"],
  };
  return Object.entries(directives).map(([name, sources]) => `${name} ${sources.join(' ')}`).join('; ');
}
