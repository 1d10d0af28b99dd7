/**
 * The runs table: query (search, status filter, tag, sort), a sparse cache of pages fetched as the table scrolls
 * (so 10,000 runs cost only the rows on screen), multi-selection, and live updates: a step event moves a row's
 * progress in place, a status change refreshes the loaded pages (at most once a second).
 */
import type { ApiClient, LiveEvent, Request, RunStatus, RunsPage } from '../../../app/contract.ts';
import { HEADLINE_METRIC } from '../../../app/contract.ts';

export type RunRow = RunsPage['rows'][number];
export type SortKey = NonNullable<Request<'runs.list'>['sort']>;

export interface Scheduler {
  /** Runs fn after ms; returns a cancel function. */
  after(ms: number, fn: () => void): () => void;
}

export const realScheduler: Scheduler = {
  after(ms, fn) {
    const t = setTimeout(fn, ms);
    return () => clearTimeout(t);
  },
};

/** Metric whose best and last values the table shows: the headline metric, as `lrnet runs` shows it. */
export const TABLE_METRIC = HEADLINE_METRIC;

export class RunsTableState {
  static readonly PAGE_SIZE = 100;
  /** Status changes refresh the loaded pages at most this often. */
  static readonly REFRESH_MS = 1000;

  #search = $state('');
  #statuses = $state.raw<readonly RunStatus[]>([]);
  #tag = $state('');
  #sort = $state<SortKey>('created');
  #order = $state<'asc' | 'desc'>('desc');
  #total = $state(0);
  #pages = $state.raw<ReadonlyMap<number, readonly RunRow[]>>(new Map());
  #loaded = $state(false);
  #error = $state<string | null>(null);
  #selected = $state.raw<ReadonlySet<string>>(new Set());
  #anchor: number | null = null;
  #generation = 0;
  #inflight = new Map<number, number>();
  #range: [number, number] = [0, 60];
  #cancelRefresh: (() => void) | null = null;

  constructor(
    private readonly client: ApiClient,
    private readonly scheduler: Scheduler = realScheduler,
  ) {}

  get search(): string {
    return this.#search;
  }
  get statuses(): readonly RunStatus[] {
    return this.#statuses;
  }
  get tag(): string {
    return this.#tag;
  }
  get sort(): SortKey {
    return this.#sort;
  }
  get order(): 'asc' | 'desc' {
    return this.#order;
  }
  get total(): number {
    return this.#total;
  }
  get loaded(): boolean {
    return this.#loaded;
  }
  get error(): string | null {
    return this.#error;
  }
  get selected(): ReadonlySet<string> {
    return this.#selected;
  }
  get selectedIds(): string[] {
    return [...this.#selected];
  }

  /** The row at a position of the sorted, filtered list, or undefined while its page loads. */
  rowAt(index: number): RunRow | undefined {
    return this.#pages.get(Math.floor(index / RunsTableState.PAGE_SIZE))?.[index % RunsTableState.PAGE_SIZE];
  }

  setSearch(text: string): void {
    if (text === this.#search) return;
    this.#search = text;
    void this.reload();
  }

  toggleStatus(status: RunStatus): void {
    this.#statuses = this.#statuses.includes(status) ? this.#statuses.filter((s) => s !== status) : [...this.#statuses, status];
    void this.reload();
  }

  setTag(tag: string): void {
    this.#tag = tag.trim();
    void this.reload();
  }

  /** Sorts by a column; the same column again flips the order. */
  sortBy(key: SortKey): void {
    if (this.#sort === key) this.#order = this.#order === 'asc' ? 'desc' : 'asc';
    else {
      this.#sort = key;
      this.#order = key === 'name' || key === 'preset' || key === 'dataset' || key === 'backend' || key === 'status' ? 'asc' : 'desc';
    }
    void this.reload();
  }

  /** The table shows rows [start, end): fetch the pages they fall in. */
  setRange(start: number, end: number): void {
    this.#range = [start, end];
    const first = Math.floor(Math.max(0, start) / RunsTableState.PAGE_SIZE);
    const last = Math.floor(Math.max(0, end - 1) / RunsTableState.PAGE_SIZE);
    for (let page = first; page <= last; page++) {
      if (!this.#pages.has(page) && !this.#inflight.has(page) && (page === 0 || page * RunsTableState.PAGE_SIZE < this.#total)) void this.#fetch(page, this.#generation);
    }
  }

  /** Drops every page and fetches the visible ones again (the query changed). */
  async reload(): Promise<void> {
    this.#generation++;
    this.#pages = new Map();
    this.#inflight.clear();
    this.#anchor = null;
    const first = Math.floor(this.#range[0] / RunsTableState.PAGE_SIZE);
    await this.#fetch(first, this.#generation);
    this.setRange(...this.#range);
  }

  /** Fetches the loaded pages again, keeping them on screen meanwhile (a run changed). */
  async refresh(): Promise<void> {
    const generation = this.#generation;
    const pages = [...this.#pages.keys()];
    if (pages.length === 0) pages.push(0);
    await Promise.all(pages.map((p) => this.#fetch(p, generation)));
  }

  #query(page: number): Request<'runs.list'> {
    return {
      metric: TABLE_METRIC,
      sort: this.#sort,
      order: this.#order,
      limit: RunsTableState.PAGE_SIZE,
      offset: page * RunsTableState.PAGE_SIZE,
      ...(this.#search.trim() ? { search: this.#search.trim() } : {}),
      ...(this.#statuses.length ? { status: this.#statuses } : {}),
      ...(this.#tag ? { tag: [this.#tag] } : {}),
    };
  }

  async #fetch(page: number, generation: number): Promise<void> {
    const ticket = (this.#inflight.get(page) ?? 0) + 1;
    this.#inflight.set(page, ticket);
    const result = await this.client.call('runs.list', this.#query(page));
    if (generation !== this.#generation || this.#inflight.get(page) !== ticket) return;
    this.#inflight.delete(page);
    if (!result.ok) {
      this.#error = result.error.message;
      return;
    }
    this.#error = null;
    this.#total = result.value.total;
    const pages = new Map(this.#pages);
    pages.set(page, result.value.rows);
    // Pages past the new end are gone (runs were deleted).
    for (const p of pages.keys()) if (p * RunsTableState.PAGE_SIZE >= Math.max(this.#total, 1)) pages.delete(p);
    this.#pages = pages;
    this.#loaded = true;
  }

  /**
   * Click on a row: alone it selects only that row, with `toggle` (Ctrl/Cmd) it adds or removes it, with `range`
   * (Shift) it selects every loaded row from the last clicked one.
   */
  select(index: number, modifiers: { toggle?: boolean; range?: boolean } = {}): void {
    const row = this.rowAt(index);
    if (!row) return;
    if (modifiers.range && this.#anchor !== null) {
      const next = new Set(modifiers.toggle ? this.#selected : []);
      const [a, b] = this.#anchor < index ? [this.#anchor, index] : [index, this.#anchor];
      for (let i = a; i <= b; i++) {
        const r = this.rowAt(i);
        if (r) next.add(r.id);
      }
      this.#selected = next;
      return;
    }
    this.#anchor = index;
    if (modifiers.toggle) {
      const next = new Set(this.#selected);
      if (next.has(row.id)) next.delete(row.id);
      else next.add(row.id);
      this.#selected = next;
    } else {
      this.#selected = new Set([row.id]);
    }
  }

  /** Checkbox: adds or removes one row, keeping the rest. */
  toggle(id: string): void {
    const next = new Set(this.#selected);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    this.#selected = next;
  }

  /** Selects every row that is loaded (the ones a person has scrolled past), or clears when all are selected. */
  toggleAllLoaded(): void {
    const ids = [...this.#pages.values()].flat().map((r) => r.id);
    this.#selected = ids.every((id) => this.#selected.has(id)) ? new Set() : new Set(ids);
  }

  clearSelection(): void {
    this.#selected = new Set();
  }

  /** Applies a live event: progress moves in place, anything else schedules a refresh. */
  handle(event: LiveEvent): void {
    if (event.type === 'run-progress') {
      if (event.event.type !== 'step') return;
      const step = event.event;
      this.#patch(event.runId, (row) => ({ ...row, progress: step.totalSteps > 0 ? step.step / step.totalSteps : row.progress, status: 'running' }));
      return;
    }
    if (event.type === 'run-deleted' && this.#selected.has(event.runId)) {
      const next = new Set(this.#selected);
      next.delete(event.runId);
      this.#selected = next;
    }
    if (event.type === 'export-status') return;
    if (this.#cancelRefresh) return;
    this.#cancelRefresh = this.scheduler.after(RunsTableState.REFRESH_MS, () => {
      this.#cancelRefresh = null;
      void this.refresh();
    });
  }

  #patch(runId: string, change: (row: RunRow) => RunRow): void {
    for (const [page, rows] of this.#pages) {
      const i = rows.findIndex((r) => r.id === runId);
      if (i < 0) continue;
      const copy = rows.slice();
      copy[i] = change(rows[i]!);
      const pages = new Map(this.#pages);
      pages.set(page, copy);
      this.#pages = pages;
      return;
    }
  }

  dispose(): void {
    this.#cancelRefresh?.();
    this.#cancelRefresh = null;
  }
}
