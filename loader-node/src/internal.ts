/** What sibling packages of the monorepo may use from loader-node beyond its public entry. */
export * from './index.ts';
