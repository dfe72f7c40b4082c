// kustomize-build: `kustomize build --load-restrictor LoadRestrictionsNone`
// over sigs.k8s.io/kustomize/api, one process for many builds. It reads one
// absolute folder per line on stdin and answers each, in order, on stdout:
// "ok <n>\n" and the n bytes `kustomize build` prints, or "error <n>\n" and
// the n bytes it would print on stderr. It is built against the api version
// of the pinned kustomize, with the options that CLI sets for those flags,
// and its output is compared with the CLI's byte for byte in the tests.
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log"
	"os"
	"runtime/debug"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == "--api-version" {
		fmt.Println(apiVersion())
		return
	}
	// A process lives for one run of the caller and keeps little between
	// builds: collecting less often spends less CPU beside the caller's
	// own work (its memory stays under the caller's bound).
	debug.SetGCPercent(400)
	// The first build of a process loads kustomize's schemas and builtin
	// plugins: done here, in memory, while the caller is still busy, so
	// that the first folder asked for builds as fast as the others.
	warmUp()
	in := bufio.NewReader(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	var logged bytes.Buffer
	// kustomize's warnings go to the answer, as the CLI's go to its stderr.
	log.SetOutput(&logged)
	log.SetFlags(log.LstdFlags)
	fsys := filesys.MakeFsOnDisk()
	for {
		line, err := in.ReadString('\n')
		if err != nil {
			return
		}
		dir := line[:len(line)-1]
		logged.Reset()
		yml, err := build(fsys, dir)
		if err != nil {
			msg := append(logged.Bytes(), []byte("Error: "+err.Error()+"\n")...)
			fmt.Fprintf(out, "error %d\n", len(msg))
			out.Write(msg)
		} else {
			fmt.Fprintf(out, "ok %d\n", len(yml))
			out.Write(yml)
		}
		if out.Flush() != nil {
			return
		}
	}
}

// build is the CLI's build command with `--load-restrictor
// LoadRestrictionsNone` and every other flag at its default
// (HonorKustomizeFlags in sigs.k8s.io/kustomize/kustomize/v5).
func build(fsys filesys.FileSystem, dir string) ([]byte, error) {
	opts := krusty.MakeDefaultOptions()
	opts.Reorder = krusty.ReorderOptionUnspecified
	opts.LoadRestrictions = types.LoadRestrictionsNone
	opts.PluginConfig.HelmConfig.Enabled = false
	opts.PluginConfig.HelmConfig.Command = "helm"
	opts.PluginConfig.HelmConfig.ApiVersions = []string{}
	opts.PluginConfig.HelmConfig.KubeVersion = ""
	opts.PluginConfig.HelmConfig.Debug = false
	opts.AddManagedbyLabel = os.Getenv("KUSTOMIZE_ENABLE_MANAGEDBY_LABEL") == "on"
	m, err := krusty.MakeKustomizer(opts).Run(fsys, dir)
	if err != nil {
		return nil, err
	}
	return m.AsYaml()
}

// apiVersion is the sigs.k8s.io/kustomize/api version this binary holds.
func apiVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == "sigs.k8s.io/kustomize/api" {
				return dep.Version
			}
		}
	}
	return "unknown"
}

// warmUp builds a small kustomization in memory (a ConfigMap, with a
// namespace and labels): the builtin transformers most builds run. It
// patches nothing, as a patch would load the whole Kubernetes schema, which
// costs more than it saves.
func warmUp() {
	fsys := filesys.MakeFsInMemory()
	files := map[string]string{
		"/warm/kustomization.yaml": "namespace: warm\nlabels:\n- pairs:\n    warm: up\nresources:\n- configmap.yaml\n",
		"/warm/configmap.yaml":     "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: warm\ndata:\n  warm: up\n",
	}
	for name, text := range files {
		if fsys.WriteFile(name, []byte(text)) != nil {
			return
		}
	}
	// Its warnings are no one's: they go nowhere.
	log.SetOutput(io.Discard)
	_, _ = build(fsys, "/warm")
}
