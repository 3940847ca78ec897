// The files at the image's top level that PCR2 measures with the code: who may configure
// the enclave, and who may move its key to a new build. Their names alone, in a module that
// loads nothing, so serve can name them in a usage error before it loads their parsers.
export const OPERATOR_FILE = 'operator.json'
export const UPGRADE_FILE = 'upgrade.json'
