/** The config file a command reads unless told otherwise (--config, SPINE_CONFIG). */
export const DEFAULT_CONFIG_FILE = 'spine.config.json5';
