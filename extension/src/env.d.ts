// `?raw` imports are the file's text: vite (tests) does it natively, build.mjs likewise.
declare module "*?raw" {
  const text: string;
  export default text;
}
