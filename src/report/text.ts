/**
 * Text from outside (a server's error body, a file name from a listing, a tag) reaches terminals,
 * CI logs and the job summary. There it must stay text: an escape sequence would drive the
 * terminal (rewrite lines, set its title, hide what follows), a line break in a CI log would
 * start a workflow command (`::add-mask::`, `::stop-commands::`), and Markdown or HTML in the job
 * summary would render as links, images or markup (issue 10, item 14).
 */

/**
 * C0 and C1 controls, DEL, and the invisible format characters that reorder or hide text
 * (bidi embeddings, overrides and isolates, zero-width joiners, the BOM).
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding them is the point
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;

/** One printable line: whitespace controls become a space, every other one a visible `\xHH`/`\uHHHH`. */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (c) => {
    if (c === '\n' || c === '\r' || c === '\t' || c === '\u2028' || c === '\u2029') return ' ';
    const code = c.charCodeAt(0);
    return code <= 0xff
      ? `\\x${code.toString(16).padStart(2, '0')}`
      : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

/**
 * Text as a Markdown code span: printable, with a backtick (which could end the span) made a
 * quote. Inside a code span nothing else is markup: no HTML, no links, no emphasis.
 */
export function codeSpan(text: string): string {
  return `\`${printable(text).replace(/`/g, "'")}\``;
}

/**
 * A code span inside a table cell, where a `|` would end the cell even within the span; GitHub
 * reads `\|` there as a plain `|`. Elsewhere (a list item) the backslash would show, so only
 * cells escape it.
 */
export function cellCodeSpan(text: string): string {
  return codeSpan(text).replace(/\|/g, '\\|');
}
