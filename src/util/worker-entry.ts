/**
 * How to start a worker thread from a module beside `base` (its import.meta.url). Built: the .js
 * file beside it. Under tsx (tests, bench) the .ts source, loaded through tsx's API: Node 20 does
 * not apply the parent's --import hooks to a worker's entry file.
 */
export function workerEntry(base: string, name: string): { code: string | URL; eval: boolean } {
  const fromSource = base.endsWith('.ts');
  const url = new URL(`./${name}${fromSource ? '.ts' : '.js'}`, base);
  return fromSource
    ? {
        code: `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(url.href)}); });`,
        eval: true,
      }
    : { code: url, eval: false };
}
