/** bootsmith's version, as the programs print it. */
export { version } from '../package.json';
