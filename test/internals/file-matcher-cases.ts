/**
 * The file-v1 conformance table (SPEC §3, §5): rules of one domain, requests,
 * and the rule (by index) and raw variable values each request must get.
 * Every matcher implementation runs all of it.
 */
export interface MatcherCase {
  readonly name: string;
  readonly templates: readonly string[];
  /** [path, query, expected template index or null, expected raw values] */
  readonly requests: readonly (readonly [string, string, number | null, Record<string, string>?])[];
}

export const MATCHER_CASES: readonly MatcherCase[] = [
  {
    name: 'literal template',
    templates: ['/install.sh'],
    requests: [['/install.sh', '', 0, {}], ['/install.shx', '', null], ['/install.sh/', '', null], ['/', '', null]],
  },
  {
    name: 'an earlier variable takes the longest run that still matches',
    templates: ['/{name}-{version}.tgz'],
    requests: [
      ['/my-tool-1.0.tgz', '', 0, { name: 'my-tool', version: '1.0' }],
      ['/a-b.tgz', '', 0, { name: 'a', version: 'b' }],
      ['/ab.tgz', '', null],
      ['/-1.tgz', '', null],
    ],
  },
  {
    name: '{var} takes unreserved and %XX only; {+var} also reserved characters',
    templates: ['/x/{v}', '/y/{+v}'],
    requests: [
      ['/x/a%20b', '', 0, { v: 'a%20b' }],
      ['/x/a:b', '', null],
      ['/x/a/b', '', null],
      ['/x/', '', null],
      ['/x/a%2', '', null],
      ['/y/a:b/c+d', '', 1, { v: 'a:b/c+d' }],
      ['/y/', '', null],
    ],
  },
  {
    name: 'literal text beats a variable at the first difference',
    templates: ['/tool-{v}.tgz', '/tool-latest.tgz', '/{file}'],
    requests: [
      ['/tool-latest.tgz', '', 1, {}],
      ['/tool-1.0.tgz', '', 0, { v: '1.0' }],
      ['/other', '', 2, { file: 'other' }],
    ],
  },
  {
    name: '{var} beats {+var}',
    templates: ['/x/{+rest}', '/x/{one}'],
    requests: [
      ['/x/a', '', 1, { one: 'a' }],
      ['/x/a/b', '', 0, { rest: 'a/b' }],
    ],
  },
  {
    name: 'literal segment beats variables across segments',
    templates: ['/a/{x}/c', '/a/b/{y}', '/{+any}'],
    requests: [
      ['/a/b/c', '', 1, { y: 'c' }],
      ['/a/z/c', '', 0, { x: 'z' }],
      ['/q/r', '', 2, { any: 'q/r' }],
    ],
  },
  {
    name: 'ties keep manifest order',
    templates: ['/{a}', '/{b}', '/{c}.zip'],
    requests: [
      ['/file', '', 0, { a: 'file' }],
      ['/file.zip', '', 2, { c: 'file' }],
    ],
  },
  {
    name: 'templates of the same shape share a branch and still bind their own names',
    templates: ['/{x}/{+rest}', '/{y}/b'],
    requests: [
      ['/1/b', '', 1, { y: '1' }],
      ['/1/c/d', '', 0, { x: '1', rest: 'c/d' }],
    ],
  },
  {
    name: 'more literal text after a variable wins',
    templates: ['/{name}', '/{name}.tgz'],
    requests: [
      ['/a.tgz', '', 1, { name: 'a' }],
      ['/a.zip', '', 0, { name: 'a.zip' }],
    ],
  },
  {
    name: 'a name used twice must capture the same text',
    templates: ['/{v}/tool-{v}.tgz'],
    requests: [['/1.0/tool-1.0.tgz', '', 0, { v: '1.0' }], ['/1.0/tool-2.0.tgz', '', null]],
  },
  {
    name: 'several {+var} split greedily',
    templates: ['/{+a}-{+b}'],
    requests: [['/x-y-z', '', 0, { a: 'x-y', b: 'z' }]],
  },
  {
    name: 'templates with ? match path and query, literally and in order',
    templates: ['/data?a={a}&b={b}', '/data'],
    requests: [
      ['/data', 'a=1&b=2', 0, { a: '1', b: '2' }],
      ['/data', 'b=2&a=1', 1, {}],
      ['/data', '', 1, {}],
    ],
  },
  {
    name: 'a {+var} at the start may match the whole path',
    templates: ['{+path}'],
    requests: [['/a/b', '', 0, { path: '/a/b' }]],
  },
  {
    name: 'trailing slash is significant',
    templates: ['/dir/', '/dir'],
    requests: [['/dir/', '', 0, {}], ['/dir', '', 1, {}]],
  },
  {
    name: 'deep literal paths with a variable file name',
    templates: ['/linux/amd64/{v}/tool', '/linux/{arch}/{v}/tool', '/{os}/{arch}/{v}/tool'],
    requests: [
      ['/linux/amd64/1.2/tool', '', 0, { v: '1.2' }],
      ['/linux/arm64/1.2/tool', '', 1, { arch: 'arm64', v: '1.2' }],
      ['/darwin/arm64/1.2/tool', '', 2, { os: 'darwin', arch: 'arm64', v: '1.2' }],
      ['/darwin/arm64/1.2/tool/x', '', null],
    ],
  },
];
