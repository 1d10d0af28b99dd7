/**
 * Turns what a person types into a search box into an FTS5 query. Raw FTS5 syntax is unforgiving ("test/argmax" or
 * a stray quote is a syntax error), so the input is parsed leniently and every word is quoted.
 */

/** Columns of runs_fts a word can be limited to with `field:word`; plural and singular both accepted. */
const FIELDS: Record<string, string> = {
  name: 'name',
  tag: 'tags',
  tags: 'tags',
  note: 'notes',
  notes: 'notes',
  preset: 'preset',
  status: 'status',
  config: 'config',
};

/**
 * The FTS5 MATCH expression for `text`, or undefined when it holds nothing searchable. Words (and "quoted
 * phrases") are ANDed; each matches as a prefix ("tern" finds "ternary"); `field:word` restricts a word to a column.
 */
export function ftsQuery(text: string): string | undefined {
  const terms: string[] = [];
  const re = /(?:(\w+):)?(?:"([^"]*)"?|(\S+))/g;
  for (const m of text.matchAll(re)) {
    const field = m[1] !== undefined ? FIELDS[m[1].toLowerCase()] : undefined;
    let word = m[2] ?? m[3] ?? '';
    if (m[1] !== undefined && field === undefined) word = `${m[1]}:${word}`; // not a field: keep it as text
    // A term with no letters or digits would be an empty phrase, which FTS5 rejects.
    if (!/[\p{L}\p{N}]/u.test(word)) continue;
    const phrase = `"${word.replace(/"/g, '""')}"*`;
    terms.push(field ? `${field} : ${phrase}` : phrase);
  }
  return terms.length > 0 ? terms.join(' AND ') : undefined;
}
