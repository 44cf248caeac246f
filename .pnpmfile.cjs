// Published manifests carry no devDependencies: consumers never install them, and they
// name the private @psi/testkit, which does not exist on the registry. pnpm calls this
// for `pnpm pack` and `pnpm publish` (and so for `changeset publish`).
module.exports = {
  hooks: {
    beforePacking(pkg) {
      delete pkg.devDependencies;
      return pkg;
    },
  },
};
