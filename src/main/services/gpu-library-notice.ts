/**
 * Dawn, the WebGPU library the engine asks for a GPU, prints its own diagnostics on stderr while it
 * looks: a backend it cannot load (`Warning: Couldn't load Vulkan: …` and the C++ frame it came from),
 * limits it lowers, blank lines between them. The engine reports the device it chose and why in its
 * progress events, so a job's log and its error leave these lines out.
 */
const DAWN_WARNING = /^Warning: /;
const DAWN_FRAME = /^\s+at .*\/third_party\/dawn\//;

export function isGpuLibraryNotice(line: string): boolean {
  return line.trim() === '' || DAWN_WARNING.test(line) || DAWN_FRAME.test(line);
}
