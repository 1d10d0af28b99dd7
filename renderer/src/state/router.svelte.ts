/**
 * Hash routing: the page and its parameters live in the URL hash (`#/run/ABCD1234`, `#/compare?ids=A,B`), so the
 * same build works from http:// and from Electron's app:// protocol, and back/forward just work.
 */

export type Route =
  | { readonly page: 'runs' }
  | { readonly page: 'new'; readonly from?: string }
  | { readonly page: 'run'; readonly id: string }
  | { readonly page: 'compare'; readonly ids: readonly string[] }
  | { readonly page: 'export'; readonly id?: string };

/** Parses a location hash; anything unknown is the runs page. */
export function parseRoute(hash: string): Route {
  const [path = '', query = ''] = hash.replace(/^#\/?/, '').split('?');
  const params = new URLSearchParams(query);
  const [page, arg] = path.split('/');
  switch (page) {
    case 'new': {
      const from = params.get('from');
      return from ? { page: 'new', from } : { page: 'new' };
    }
    case 'run':
      return arg ? { page: 'run', id: decodeURIComponent(arg) } : { page: 'runs' };
    case 'compare':
      return { page: 'compare', ids: (params.get('ids') ?? '').split(',').filter(Boolean) };
    case 'export':
      return arg ? { page: 'export', id: decodeURIComponent(arg) } : { page: 'export' };
    default:
      return { page: 'runs' };
  }
}

export function routeHash(route: Route): string {
  switch (route.page) {
    case 'runs':
      return '#/runs';
    case 'new':
      return route.from ? `#/new?from=${encodeURIComponent(route.from)}` : '#/new';
    case 'run':
      return `#/run/${encodeURIComponent(route.id)}`;
    case 'compare':
      return `#/compare?ids=${route.ids.map(encodeURIComponent).join(',')}`;
    case 'export':
      return route.id ? `#/export/${encodeURIComponent(route.id)}` : '#/export';
  }
}

/** The current route, following the window's hash. */
export class Router {
  #route = $state.raw<Route>({ page: 'runs' });

  constructor(private readonly target: { location: { hash: string }; addEventListener(type: 'hashchange', fn: () => void): void }) {
    this.#route = parseRoute(target.location.hash);
    target.addEventListener('hashchange', () => (this.#route = parseRoute(target.location.hash)));
  }

  get route(): Route {
    return this.#route;
  }

  go(route: Route): void {
    const hash = routeHash(route);
    if (this.target.location.hash === hash) this.#route = route;
    else this.target.location.hash = hash;
  }
}
